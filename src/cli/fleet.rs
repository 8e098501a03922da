//! `credsync fleet …` hands over to `credsync-fleet`, the fleet's own binary
//! beside this one (its etcd client, async runtime and signatures stay out of
//! the setuid binary). Only for administrators: never through the setuid
//! install, where the caller is not root.
#![forbid(unsafe_code)]

use credsync_core::error::Error;
use credsync_core::system::privilege::Invoker;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

pub fn hand_over(
    invoker: &Invoker,
    root: Option<&Path>,
    json: bool,
    args: &[OsString],
) -> Result<(), Error> {
    if invoker.elevated {
        return Err(Error::Denied(
            "fleet commands are for administrators: run them as root (sudo credsync fleet …)"
                .into(),
        ));
    }
    let here = std::env::current_exe()
        .map_err(|e| Error::Failure(format!("cannot find credsync's own path: {e}")))?;
    let binary = here.with_file_name("credsync-fleet");
    let mut command = Command::new(&binary);
    if let Some(root) = root {
        command.arg("--root").arg(root);
    }
    if json {
        command.arg("--json");
    }
    let e = command.args(args).exec();
    Err(Error::Failure(format!(
        "cannot run {}: {e}; install the credsync-fleet package",
        binary.display()
    )))
}
