// SPDX-License-Identifier: GPL-2.0
/*
 * A real PE image for msrguard's image attribution tests, built with
 * MinGW-w64 as a DLL (no C library, no entry point). The host tests parse
 * it; the VM test loads it into a long-mode guest at a kernel-like address
 * and calls the export, whose WRMSR of IA32_UCODE_WRITE (0x79) the default
 * policy denies.
 */

__declspec(dllexport) void msrguard_probe_wrmsr(void)
{
	__asm__ volatile("wrmsr" : : "c"(0x79), "a"(0x1000), "d"(0));
}
