//! What the agent needs from the outside world: a network ([`Transport`]) and a platform
//! ([`Platform`]). Both are async traits without `Send` bounds, so an executor on one thread
//! works; when the implementing types are `Send`, so are the agent's futures.

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection could not be made or broke.
    Connect,
    /// A read or the whole request took too long.
    Timeout,
    /// The server answered with this HTTP status.
    Status(u16),
    /// The body would not fit the caller's buffer: the transport stopped reading.
    TooLarge,
    /// A ranged GET was not answered with exactly the asked range.
    BadRange,
    /// The body ended early.
    Truncated,
    /// Anything else.
    Other,
}

impl TransportError {
    /// Whether trying again may help (a byte cap violation will not).
    pub const fn is_transient(self) -> bool {
        !matches!(self, Self::TooLarge)
    }
}

/// Network, as the agent needs it. Bodies are bounded by the caller's buffer: an
/// implementation stops reading at `buf.len()` and fails with [`TransportError::TooLarge`].
/// Per-read timeouts belong to the implementation.
#[allow(
    async_fn_in_trait,
    reason = "no Send bound on purpose: single-threaded executors must work"
)]
pub trait Transport {
    /// v2: `POST /api/v2/device/checkin` (FCI1 body, bearer device token); the answer (FCA1)
    /// into `resp`.
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError>;
    /// v2: bytes `[offset, offset + buf.len())` of `url` via HTTP Range. Must return exactly
    /// those bytes (206 with a matching Content-Range; a 200 only for offset 0, reading at most
    /// `buf.len()` bytes). Returns the bytes read (short only at the end of the resource).
    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError>;
    /// v2: `POST /api/v2/device/events` (FEV1 body).
    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError>;
    /// legacy: `GET path_and_query`; the JSON body into `resp`.
    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError>;
    /// legacy: `POST` a JSON body to `path`.
    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError>;
}

/// Clock, sleep, randomness and the application's self-test.
#[allow(
    async_fn_in_trait,
    reason = "no Send bound on purpose, as for Transport"
)]
pub trait Platform {
    /// Milliseconds since this boot, monotonic.
    fn now_ms(&mut self) -> u64;
    /// Sleeps (pacing, backoff).
    async fn sleep_ms(&mut self, ms: u64);
    /// Fills `buf` with random bytes (nonces, jitter). Must be a real RNG on a device.
    fn fill_random(&mut self, buf: &mut [u8]);
    /// The application's own self-test during a trial boot, run after the server was reached.
    fn self_test(&mut self) -> bool;
    /// What the device says about itself at each check-in: the agent has set the counter,
    /// the chip and the uptime; the platform sets what only it knows (`reset_reason`,
    /// `free_heap`) and the application's `attributes`, and leaves unknown fields as
    /// [`Telemetry::new`] made them.
    fn telemetry(&mut self, telemetry: &mut fota_protocol::v2::checkin::Telemetry);
}
