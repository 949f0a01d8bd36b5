//! Amazon ECR and ECR Public: the `ecr` mode.
//!
//! - [`registry`]: the provider, with a stored IAM key signed by the SDK's own signer, and the
//!   registry's answers;
//! - [`identity`]: the machine's or workload's own identity through the AWS SDK (chain mode,
//!   only with the `cloud` feature).

#[cfg(feature = "cloud")]
pub mod identity;
pub mod registry;
