//! Warnings: what the person should know about an action that still went through (a renewal
//! that failed while a cached token still serves, an access log that cannot be written). The
//! library never prints: it collects them, and each binary puts them where its person looks
//! (the helper: stderr and the terminal; the kubelet provider: the kubelet's log; `coffer`:
//! stderr).

use std::sync::{Arc, Mutex, PoisonError};

/// One line, naming no secret, without the `coffer: ` prefix the binaries add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(String);

impl Warning {
    pub fn new(line: impl Into<String>) -> Warning {
        Warning(line.into())
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the parts of one action (its store, its token keeper) leave their warnings; a clone
/// shares the same list.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<Warning>>>);

impl Warnings {
    pub fn push(&self, warning: Warning) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warning);
    }

    /// The warnings so far, oldest first; the list is left empty.
    pub fn take(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_list_and_take_empties_it() {
        let warnings = Warnings::default();
        let shared = warnings.clone();
        shared.push(Warning::new("first"));
        warnings.push(Warning::new("second"));
        let taken: Vec<String> = warnings.take().iter().map(ToString::to_string).collect();
        assert_eq!(taken, ["first", "second"]);
        assert!(shared.take().is_empty());
    }
}
