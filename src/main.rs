use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = guestpass::cli::Cli::parse();
    if let Err(message) = guestpass::cli::run(cli).await {
        eprintln!("guestpass: {message}");
        std::process::exit(1);
    }
}
