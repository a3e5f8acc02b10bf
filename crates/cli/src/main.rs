//! The `connectly-sync` command. Everything but process setup lives in the library
//! half of this crate, so a custom build can add sinks and reuse the same CLI.

fn main() -> std::process::ExitCode {
    connectly_sync::main_with(connectly_sync::SinkRegistry::with_builtin_sinks())
}
