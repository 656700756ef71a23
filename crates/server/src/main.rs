fn main() -> std::process::ExitCode {
    dialnexa_server::cli::main()
}
