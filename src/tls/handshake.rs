//! Why a client's TLS handshake failed, as a closed set: the `reason` label of
//! `authgate_tls_handshake_failures_total` (SPEC §6).
//!
//! The set is closed so the label stays bounded whatever a client sends; [`HandshakeFailure::of`]
//! is the one mapping from a handshake error to it, and [`HandshakeFailure::ALL`] lets the
//! metrics export every label at 0 from the start. It never logs and never keeps the error.

use std::io;

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client's certificate did not verify (untrusted, expired, revoked, malformed).
    BadCertificate,
    /// A certificate was required and the client presented none.
    NoCertificate,
    /// No ALPN protocol in common.
    NoApplicationProtocol,
    /// No TLS version, cipher suite or group in common.
    Incompatible,
    /// The client sent a malformed TLS message.
    InvalidMessage,
    /// The handshake did not finish within `handshake_timeout`.
    Timeout,
    /// The connection failed below TLS (reset, closed mid-handshake).
    Io,
    /// Any other TLS error.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order the metrics export them.
    pub const ALL: [HandshakeFailure; 8] = [
        HandshakeFailure::BadCertificate,
        HandshakeFailure::NoCertificate,
        HandshakeFailure::NoApplicationProtocol,
        HandshakeFailure::Incompatible,
        HandshakeFailure::InvalidMessage,
        HandshakeFailure::Timeout,
        HandshakeFailure::Io,
        HandshakeFailure::Other,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::NoApplicationProtocol => "no_application_protocol",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::InvalidMessage => "invalid_message",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Io => "io",
            HandshakeFailure::Other => "other",
        }
    }

    /// The reason of a failed `accept` (the timeout is the caller's to report).
    pub fn of(error: &io::Error) -> HandshakeFailure {
        let Some(inner) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return HandshakeFailure::Io;
        };
        match inner {
            rustls::Error::InvalidCertificate(_) => HandshakeFailure::BadCertificate,
            rustls::Error::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            rustls::Error::NoApplicationProtocol => HandshakeFailure::NoApplicationProtocol,
            rustls::Error::PeerIncompatible(_) => HandshakeFailure::Incompatible,
            rustls::Error::InvalidMessage(_) => HandshakeFailure::InvalidMessage,
            _ => HandshakeFailure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_their_reason() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                HandshakeFailure::NoCertificate,
            ),
            (
                rustls::Error::NoApplicationProtocol,
                HandshakeFailure::NoApplicationProtocol,
            ),
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
                HandshakeFailure::BadCertificate,
            ),
            (
                rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
                HandshakeFailure::Incompatible,
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidCcs),
                HandshakeFailure::InvalidMessage,
            ),
            (rustls::Error::DecryptError, HandshakeFailure::Other),
        ];
        for (error, want) in cases {
            let io = io::Error::new(io::ErrorKind::InvalidData, error);
            assert_eq!(HandshakeFailure::of(&io), want);
        }
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(HandshakeFailure::of(&reset), HandshakeFailure::Io);
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<&str> = HandshakeFailure::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), HandshakeFailure::ALL.len());
    }
}
