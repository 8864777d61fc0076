//! The SMTP listener.
