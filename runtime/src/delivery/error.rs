//! The error of every call to AWS or to a local file below the command line
//! (a sink's and the DLQ's writes, a source's reads, acknowledgements and
//! lease table), with its class: each failure is mapped once to what should
//! be done about it, and the class travels with the error.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A passing fault (a timeout, a 5xx, a dropped connection): try again.
    Retryable,
    /// The service asked us to slow down: try again, later.
    Throttled,
    /// Trying again cannot help (the record is invalid or too large, the
    /// resource is missing, access is denied): dead-letter the record.
    Poison,
    /// Neither retrying nor dead-lettering is right (a local disk failed
    /// mid-write): stop, and do not acknowledge the batch.
    Fatal,
}

/// A failed call: a write of one record (or of a whole request) to a sink or
/// the DLQ, or a source's read, acknowledgement or lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What to do about it.
    pub class: ErrorClass,
    /// What failed, for envelopes and logs.
    pub message: String,
}

impl Error {
    /// A new error.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
        }
    }

    /// A failure that no retry mends and no record caused (a file that
    /// cannot be opened, a request that cannot be built): stop.
    pub fn fatal(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Fatal, message)
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class, ErrorClass::Retryable | ErrorClass::Throttled)
    }

    /// The same error, with what was being done before its message.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            class: self.class,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Error codes AWS services use to ask for a slower rate.
const THROTTLING_CODES: [&str; 9] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "TooManyRequestsException",
];

/// Error codes that mean a passing fault whatever their HTTP status. Expired
/// or not yet valid credentials are among them: the credential provider
/// refreshes them, and if it cannot, the retries run out and the batch is not
/// acknowledged (rather than every record being dead-lettered).
const TRANSIENT_CODES: [&str; 11] = [
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
];

/// Classifies an error of an AWS SDK call. `what` says which call on which
/// resource, for the message (`put_object to bucket "orders"`).
pub fn classify<E>(what: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut text = None;
    let class = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Retryable
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            // The code and message, not the SDK's full dump of the response.
            text = Some(format!(
                "{} (HTTP {status}): {}",
                if code.is_empty() { "error" } else { code },
                service.err().message().unwrap_or("no message")
            ));
            if THROTTLING_CODES.contains(&code) || status == 429 {
                ErrorClass::Throttled
            } else if TRANSIENT_CODES.contains(&code) || status >= 500 {
                ErrorClass::Retryable
            } else {
                ErrorClass::Poison
            }
        }
        // The request could not even be built: no attempt can succeed.
        _ => ErrorClass::Poison,
    };
    let text = text.unwrap_or_else(|| DisplayErrorContext(err).to_string());
    Error::new(class, format!("{what} failed: {text}"))
}

/// Classifies a local I/O error (file sinks): a disk fault is not the
/// record's fault, and a buffered write cannot be safely repeated.
pub fn classify_io(what: &str, err: &std::io::Error) -> Error {
    Error::new(ErrorClass::Fatal, format!("{what} failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    type Sdk = SdkError<SendMessageBatchError, HttpResponse>;

    fn service(status: u16, code: &str) -> Sdk {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("says why")
            .build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(SendMessageBatchError::generic(meta), raw)
    }

    #[test]
    fn context_says_what_was_being_done_and_keeps_the_class() {
        let e = Error::new(ErrorClass::Throttled, "SlowDown").context("the lease table");
        assert_eq!(
            e,
            Error::new(ErrorClass::Throttled, "the lease table: SlowDown")
        );
        assert!(e.is_retryable() && !Error::fatal("no reader").is_retryable());
    }

    #[test]
    fn every_mapped_code_gets_its_class() {
        use ErrorClass::*;
        let cases: Vec<(u16, &str, ErrorClass)> = THROTTLING_CODES
            .iter()
            .map(|c| (400, *c, Throttled))
            .chain(TRANSIENT_CODES.iter().map(|c| (400, *c, Retryable)))
            .chain([
                (429, "Whatever", Throttled),
                (500, "InternalServerError", Retryable),
                (503, "", Retryable),
                (400, "AWS.SimpleQueueService.NonExistentQueue", Poison),
                (400, "QueueDoesNotExist", Poison),
                (404, "NoSuchBucket", Poison),
                (400, "ResourceNotFoundException", Poison),
                (403, "AccessDenied", Poison),
                (400, "ValidationException", Poison),
                (400, "ConditionalCheckFailedException", Poison),
            ])
            .collect();
        for (status, code, class) in cases {
            let e = classify("send_message_batch to `q`", &service(status, code));
            assert_eq!(e.class, class, "{status} {code}");
        }
    }

    #[test]
    fn a_service_error_gives_its_code_status_and_message_only() {
        let e = classify("put_object to bucket `b`", &service(404, "NoSuchBucket"));
        assert_eq!(
            e.message,
            "put_object to bucket `b` failed: NoSuchBucket (HTTP 404): says why"
        );
        let e = classify("x", &service(500, ""));
        assert_eq!(e.message, "x failed: error (HTTP 500): says why");
    }

    #[test]
    fn transport_faults_are_retried_and_a_request_that_cannot_be_built_is_not() {
        let timeout: Sdk = SdkError::timeout_error("slow");
        assert_eq!(classify("x", &timeout).class, ErrorClass::Retryable);
        let dispatch: Sdk = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert_eq!(classify("x", &dispatch).class, ErrorClass::Retryable);
        let raw = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::empty());
        let response: Sdk = SdkError::response_error("truncated", raw);
        assert_eq!(classify("x", &response).class, ErrorClass::Retryable);
        let built: Sdk = SdkError::construction_failure("no queue URL");
        assert_eq!(classify("x", &built).class, ErrorClass::Poison);
    }

    #[test]
    fn a_local_io_error_is_fatal() {
        let e = classify_io("write to out.jsonl", &std::io::Error::other("disk full"));
        assert_eq!(
            e,
            Error::new(ErrorClass::Fatal, "write to out.jsonl failed: disk full")
        );
    }
}
