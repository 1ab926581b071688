// Loads the kernel modules the agent initramfs carries for the embedded kernel (NIC drivers,
// bonding, 802.1Q), in the order the build wrote them: the agent's kernel is a distribution
// kernel whose drivers are modules, and nothing else in the initramfs would load them.
#pragma once

#include <string>
#include <vector>

namespace activate::agent {

// Reads `list_path` (one "<absolute path of a .ko> [parameters]" per line, dependencies first)
// and loads each with finit_module(2). Returns "module <path>: <why>" for each that failed; a
// missing list means the initramfs carries no modules and is not an error.
std::vector<std::string> load_kernel_modules(const char* list_path);

}  // namespace activate::agent
