//! loom model checks of shmq; see tests/.
