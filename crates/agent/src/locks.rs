//! Locks that outlive a panic, for every module of the agent.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks that outlive a panic: a thread that panicked while holding one (a worker's panic
/// is caught and answered with the overload verdict) leaves data that is still whole, since
/// every write to it is one assignment; the agent goes on with it rather than stop enforcing.
pub(crate) trait Unpoisoned<T> {
    /// The lock, taken whatever happened to its last holder.
    fn lock_ok(&self) -> MutexGuard<'_, T>;
}

impl<T> Unpoisoned<T> for Mutex<T> {
    fn lock_ok(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// [`Unpoisoned`] for reader-writer locks.
pub(crate) trait UnpoisonedRw<T> {
    /// Read access, whatever happened to the last writer.
    fn read_ok(&self) -> RwLockReadGuard<'_, T>;
    /// Write access, whatever happened to the last writer.
    fn write_ok(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> UnpoisonedRw<T> for RwLock<T> {
    fn read_ok(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write_ok(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|p| p.into_inner())
    }
}
