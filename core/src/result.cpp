// Exit codes per error category; the table is the contract documented in README.
#include <activate/result.hpp>

namespace activate {

int exit_code(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::internal: return 1;
        case ErrorKind::usage: return 2;
        case ErrorKind::policy: return 3;
        case ErrorKind::plugin: return 4;
        case ErrorKind::input: return 5;
        case ErrorKind::activation: return 6;
        case ErrorKind::busy: return 7;
        case ErrorKind::rejected: return 8;
    }
    return 1;
}

const char* to_string(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::internal: return "internal error";
        case ErrorKind::usage: return "usage error";
        case ErrorKind::policy: return "policy error";
        case ErrorKind::plugin: return "plugin error";
        case ErrorKind::input: return "invalid input";
        case ErrorKind::activation: return "activation failed";
        case ErrorKind::busy: return "busy";
        case ErrorKind::rejected: return "bundle rejected";
    }
    return "error";
}

}  // namespace activate
