//! The `firehose_response` sink: the records a Firehose data-transformation
//! function returns. Its records are not written anywhere: Lambda mode
//! answers the invocation with them (see the `firehose` source).

mod config;
mod sink;

pub use config::*;
pub use sink::*;
