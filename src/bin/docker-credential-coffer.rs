//! The credential helper docker, podman, skopeo and buildah run: the wire protocol, nothing else.

fn main() {
    coffer::os::hardening::disable_core_dumps();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let status = coffer::protocol::serve(
        &args,
        std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        coffer::credentials::Credentials::from_env,
    );
    std::process::exit(status);
}
