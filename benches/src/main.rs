//! Benchmarks live as scripts in `benches/` (sysbench against the CN and
//! plain MariaDB); this crate is reserved for Rust benchmark drivers.

fn main() {
    eprintln!("see benches/*.sh");
}
