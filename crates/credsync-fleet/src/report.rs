//! A node's report, and the conductor's view of the fleet built from them.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node publishes at `/credsync/<fleet>/nodes/<node>/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub node: String,
    /// When the node wrote it (Unix seconds, the node's clock).
    pub at: i64,
    /// The etcd revision the node has read its entries up to.
    pub revision: i64,
    pub users: BTreeMap<String, UserReport>,
}

/// One fleet-managed user on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReport {
    /// The version both stores hold (0: none applied yet).
    pub applied: u64,
    /// An entry this node refused or could not apply, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failure>,
    /// The user was changed on this node since the version was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The version offered (when the entry could be read that far).
    pub version: Option<u64>,
    pub error: String,
}

/// Where one node stands for one user, as `fleet status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    InStep,
    Behind {
        applied: u64,
    },
    Failed {
        error: String,
    },
    Drift {
        detail: String,
    },
    /// No live report: the node's lease ran out. `since` is its last report.
    Silent {
        since: Option<i64>,
    },
}

impl Standing {
    pub fn of(desired: u64, report: Option<&Report>, seen: Option<i64>, user: &str) -> Standing {
        let Some(report) = report else {
            return Standing::Silent { since: seen };
        };
        let Some(user) = report.users.get(user) else {
            return Standing::Behind { applied: 0 };
        };
        if let Some(detail) = &user.drift {
            return Standing::Drift {
                detail: detail.clone(),
            };
        }
        // A refusal stands until a good entry replaces the refused one.
        if let Some(failure) = &user.failed {
            return Standing::Failed {
                error: failure.error.clone(),
            };
        }
        if user.applied >= desired {
            Standing::InStep
        } else {
            Standing::Behind {
                applied: user.applied,
            }
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Standing::InStep => "in step",
            Standing::Behind { .. } => "behind",
            Standing::Failed { .. } => "failed",
            Standing::Drift { .. } => "drift",
            Standing::Silent { .. } => "silent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(applied: u64, failed: Option<&str>, drift: Option<&str>) -> Report {
        Report {
            node: "n1".into(),
            at: 100,
            revision: 9,
            users: BTreeMap::from([(
                "admin".to_owned(),
                UserReport {
                    applied,
                    failed: failed.map(|e| Failure {
                        version: Some(3),
                        error: e.into(),
                    }),
                    drift: drift.map(str::to_owned),
                },
            )]),
        }
    }

    #[test]
    fn each_standing_follows_from_the_report() {
        assert_eq!(
            Standing::of(2, Some(&report(2, None, None)), None, "admin"),
            Standing::InStep
        );
        assert_eq!(
            Standing::of(3, Some(&report(2, None, None)), None, "admin"),
            Standing::Behind { applied: 2 }
        );
        assert_eq!(
            Standing::of(
                3,
                Some(&report(2, Some("bad signature"), None)),
                None,
                "admin"
            ),
            Standing::Failed {
                error: "bad signature".into()
            }
        );
        assert_eq!(
            Standing::of(
                2,
                Some(&report(2, None, Some("changed locally"))),
                None,
                "admin"
            ),
            Standing::Drift {
                detail: "changed locally".into()
            }
        );
        assert_eq!(
            Standing::of(2, None, Some(50), "admin"),
            Standing::Silent { since: Some(50) }
        );
        assert_eq!(
            Standing::of(2, Some(&report(2, None, None)), None, "bob"),
            Standing::Behind { applied: 0 }
        );
    }
}
