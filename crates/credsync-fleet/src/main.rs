fn main() -> std::process::ExitCode {
    credsync_fleet::main()
}
