fn main() {
    eprintln!("skynet-cluster: no subcommands yet");
    std::process::exit(2);
}
