//! Both stores held together, in the one lock order every command uses:
//! `/etc/.pwd.lock`, then `/etc/shadow.lock`, then the database (whose own lock
//! is taken per transaction). Dropping `Stores` releases them in reverse.
//!
//! Taking them also finishes any change a crash interrupted. A change records
//! its intent (old and new Linux hash) before replacing `/etc/shadow`, so the
//! intent and shadow together say how far it got:
//! - shadow holds the intent's new hash: shadow was replaced; complete the record;
//! - anything else (the old hash, or a later outside change): the change never
//!   reached shadow, or was superseded there; drop the intent and leave the
//!   drift rules to judge what shadow holds now.
#![forbid(unsafe_code)]

use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::Error;
use crate::store::{Intent, Store};
use crate::system::Paths;
use crate::system::shadow::{ShadowFile, ShadowLock};

pub struct Stores {
    // Field order is drop order: the store closes before the shadow lock goes.
    pub store: Store,
    pub shadow: ShadowFile,
    pub lock: ShadowLock,
}

impl Stores {
    pub fn lock(paths: &Paths, config: &Config, store_owner: u32) -> Result<Stores, Error> {
        let lock = ShadowLock::acquire(paths, config.lock_timeout())?;
        let shadow = lock.read()?;
        let store = Store::open(&paths.store_dir(), store_owner)?;
        let mut stores = Stores {
            store,
            shadow,
            lock,
        };
        stores.finish_interrupted()?;
        Ok(stores)
    }

    /// Applies the recovery rule above to every intent left in the store.
    fn finish_interrupted(&mut self) -> Result<(), Error> {
        let intents = self.store.intents()?;
        if intents.is_empty() {
            return Ok(());
        }
        let (reached, lost): (Vec<Intent>, Vec<Intent>) = intents.into_iter().partition(|i| {
            self.shadow
                .entry(&i.user)
                .is_some_and(|e| e.hash == i.new_linux)
        });
        self.store.complete_intents(&reached)?;
        self.store.abandon_intents(&lost)?;
        for intent in &reached {
            audit::log(Event::Finished {
                user: &intent.user,
                by: &intent.provenance.by,
                how: intent.provenance.source.as_str(),
            });
        }
        Ok(())
    }
}
