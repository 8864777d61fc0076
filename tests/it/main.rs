//! The integration tests: quell on port 0, a fake upstream, real SMTP and HTTP.

mod addresses;
mod admin;
mod binary;
mod cli;
mod concurrency;
mod config_files;
mod delivery;
mod dkim;
mod durability;
mod erasure;
mod full_disk;
mod http;
mod http_input;
mod http_limits;
mod landing;
mod logs;
mod mailgun;
mod mandrill;
mod mixpanel;
mod openapi;
mod relay;
mod smtp;
mod support;
mod swaks;
mod unsub_links;
mod upstream_tls;
