//! Google Artifact Registry and Container Registry: the `google` mode.
//!
//! - [`registry`]: the provider, with a stored service-account key or refresh token;
//! - [`identity`]: Application Default Credentials through `google-cloud-auth` (chain mode,
//!   only with the `cloud` feature), with the metadata server read by [`metadata`].

#[cfg(feature = "cloud")]
pub mod identity;
#[cfg(feature = "cloud")]
pub mod metadata;
pub mod registry;
