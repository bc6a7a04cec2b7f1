//! The running `firehose_response` sink: it accepts every record, which
//! Lambda mode has already taken from the batch's output for the answer.

use crate::delivery::Error;
use crate::sinks::{OutRecord, Write};

/// The answer's sink: nothing to write.
pub struct Writer;

impl Write for Writer {
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        vec![Ok(()); records.len()]
    }
}
