//! lexgate's server, in layers that import only downward:
//!
//! - [`http`]: routes, extractors, sessions and CSRF, the OpenID relying party, pages and the JSON
//!   API. Handlers parse input, make one service call and render.
//! - [`service`]: the domain. Every permission decision and every audit event happens here.
//! - [`store`]: the database, one `Storage` split per aggregate; nothing above it sees sea-orm.
//! - [`cli`]: the `lexgate` commands other than `serve`, on top of [`service`].
//!
//! [`domain`], [`error`] and [`settings`] are the vocabulary every layer shares; they import none
//! of the layers. `scripts/check-layers.sh` keeps the rule true in CI.

pub mod cli;
pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod settings;
pub mod store;
