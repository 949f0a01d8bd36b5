//! Azure Container Registry: the `azure` mode.
//!
//! - [`registry`]: the provider, with a stored service principal or AAD token, and the
//!   registry's `/oauth2/exchange`;
//! - [`identity`]: the workload's or machine's identity through `azure_identity` (chain mode,
//!   only with the `cloud` feature).

#[cfg(feature = "cloud")]
pub mod identity;
pub mod registry;
