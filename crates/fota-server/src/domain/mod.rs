//! What the server decides, between the HTTP handlers above and the store below: how a check-in
//! is answered, what an event does to a device, whether a release is accepted, how a rollback
//! order is opened, and the seed protocol's rules. Handlers parse the request, check who is
//! asking, call a function here, and shape the answer; nothing here reads a request or builds
//! a response. Failures are [`AppError`](crate::error::AppError)s, so each keeps the code and
//! status it has always answered with.

pub(crate) mod admission;
pub(crate) mod checkin;
pub(crate) mod events;
pub(crate) mod legacy;
pub(crate) mod releases;
pub(crate) mod rollbacks;
