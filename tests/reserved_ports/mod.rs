mod boot_order;
mod concurrency;
mod containers;
mod file_kinds;
mod input;
mod interrupted;
mod kernel;
