//! Values that a running gateway replaces without stopping: the SMS and
//! USSD template sets, swapped whole on SIGHUP once the new set has been
//! loaded and checked (a set that fails its checks never replaces the one
//! in use). Readers take the current value; a swap never waits for them.

use std::sync::{Arc, RwLock};

/// A value swapped whole; readers get the one current when they ask.
#[derive(Debug)]
pub struct Swappable<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Swappable<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Self {
        Swappable {
            current: RwLock::new(Arc::new(value)),
        }
    }

    /// The value now.
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value; readers holding the old one keep it until they drop it.
    pub fn replace(&self, value: T) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_the_value_it_took_and_the_next_gets_the_new_one() {
        let held = Swappable::new(1);
        let before = held.current();
        held.replace(2);
        assert_eq!((*before, *held.current()), (1, 2));
    }
}
