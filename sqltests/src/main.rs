//! sqllogictest runner against the CN and plain MariaDB (see the sqltests
//! issue); not written yet.

fn main() {
    eprintln!("sqltests: the runner is not implemented yet");
    std::process::exit(2);
}
