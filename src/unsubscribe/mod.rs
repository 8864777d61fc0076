//! Unsubscribe links: authenticated, encrypted per-recipient tokens and the landing pages.
