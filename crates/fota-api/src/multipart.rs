//! The `multipart/form-data` framing (RFC 7578) of a release upload: part heads, part ends
//! and the closing delimiter, as bytes. Bodies are the caller's, so a large part (the image)
//! can be streamed between its head and its end instead of being copied into one buffer.
//!
//! ```
//! use fota_api::multipart::Form;
//!
//! let form = Form::new("b0undary");
//! let body = form.encode(&[("manifest", b"FOTM...")]);
//! assert_eq!(form.content_type(), "multipart/form-data; boundary=b0undary");
//! assert!(body.ends_with(b"\r\n--b0undary--\r\n"));
//! ```
//!
//! The boundary is the caller's choice too: it must not occur in any part (a client derives
//! it from the parts and the time; tests may use a constant). Names and file names are
//! written as given, so they must not contain `"` or line breaks; the upload's part names are
//! fixed ASCII words.

/// A form being framed with one boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    boundary: String,
}

/// What ends every part's body.
pub const PART_END: &[u8] = b"\r\n";

impl Form {
    /// A form whose parts are separated by `boundary`.
    pub fn new(boundary: impl Into<String>) -> Self {
        Self {
            boundary: boundary.into(),
        }
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The request's `Content-Type` header value.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The head of a plain text field `name`; its value follows, then [`PART_END`].
    pub fn field_head(&self, name: &str) -> Vec<u8> {
        format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n",
            self.boundary
        )
        .into_bytes()
    }

    /// The head of a binary file part `name` named `filename`; its bytes follow, then
    /// [`PART_END`].
    pub fn file_head(&self, name: &str, filename: &str) -> Vec<u8> {
        format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            self.boundary
        )
        .into_bytes()
    }

    /// The closing delimiter, after the last part's [`PART_END`].
    pub fn close(&self) -> Vec<u8> {
        format!("--{}--\r\n", self.boundary).into_bytes()
    }

    /// A whole body of binary file parts, each named after itself, in the order given.
    pub fn encode(&self, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, data) in parts {
            body.extend_from_slice(&self.file_head(name, name));
            body.extend_from_slice(data);
            body.extend_from_slice(PART_END);
        }
        body.extend_from_slice(&self.close());
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_framed_as_rfc_7578_says() {
        let form = Form::new("XyZ");
        assert_eq!(
            form.encode(&[("class", b"c1"), ("image", b"\xE9\x00")]),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"class\"; filename=\"class\"\r\n\
              Content-Type: application/octet-stream\r\n\r\nc1\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"image\"\r\n\
              Content-Type: application/octet-stream\r\n\r\n\xE9\x00\r\n--XyZ--\r\n"
        );
        assert_eq!(
            form.field_head("class"),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"class\"\r\n\r\n"
        );
        assert_eq!(form.encode(&[]), b"--XyZ--\r\n");
    }
}
