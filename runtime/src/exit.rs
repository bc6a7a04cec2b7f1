//! The process's exit codes, the same for every command and mode
//! (documented in `docs/getting-started.md` and `docs/check.md`).

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the pipeline is invalid, or a test failed.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: a file could not be read.
pub const EXIT_UNREADABLE: i32 = 2;
/// Exit code: a run stopped early or its counts did not add up.
pub const EXIT_RUN_FAILED: i32 = 3;
/// Exit code: a run dead-lettered or filtered more records than its
/// `--max-dead-letters` or `--max-filtered` allows.
pub const EXIT_OVER_LIMIT: i32 = 4;
