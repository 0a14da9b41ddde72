//! The shipped binaries are what the README promises: static executables
//! that run on any `x86_64` Linux (no dynamic loader, so no glibc version).

use portmatrix_tests::{MODULES, module_binary};

const PT_INTERP: u32 = 3;

/// The program header types of a 64-bit little-endian ELF file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| usize::try_from(u64::from_le_bytes(elf[o..o + 8].try_into().unwrap())).unwrap();
    let (offset, size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..count).map(|i| u32_at(offset + i * size)).collect()
}

#[test]
fn module_binaries_are_static() {
    for module in MODULES.iter().map(|spec| spec.name) {
        let elf = std::fs::read(module_binary(module)).unwrap();
        let types = program_header_types(&elf);
        assert!(!types.is_empty());
        assert!(!types.contains(&PT_INTERP), "{module} asks for a dynamic loader: not a static binary");
    }
}

#[test]
fn a_dynamic_binary_would_be_noticed() {
    // The check itself must be able to fail: this test binary is dynamic.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(program_header_types(&me).contains(&PT_INTERP));
}
