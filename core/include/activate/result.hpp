// The one error scheme of core and plugins: functions return Result<T>, an Error carries a
// category (which decides the process exit code) and a message with context prepended by callers.
// Nothing in this project throws across a module boundary; library exceptions are caught at the
// call site and turned into an Error.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace activate {

// Categories map one-to-one onto exit codes (see exit_code() and README "Exit codes").
enum class ErrorKind {
    internal,    // a bug or an unexpected library failure
    usage,       // bad command line
    policy,      // policy file invalid (syntax, schema, unknown plugin, impossible combination)
    plugin,      // a plugin could not be loaded (not a plugin, ABI mismatch, missing symbol)
    input,       // bad protocol input (stdin message, bundle contents, firmware data)
    activation,  // the activation itself failed (I/O, kexec, efivars, disk)
    busy,        // another activation holds the lock
    rejected,    // a bundle was refused by signature, compatibility or version checks
};

int exit_code(ErrorKind kind);
const char* to_string(ErrorKind kind);

class Error {
public:
    Error(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

    ErrorKind kind() const { return kind_; }
    const std::string& message() const { return message_; }

    // Prepends what the caller was doing: "reading /esp/x: permission denied".
    Error with_context(const std::string& context) const& {
        return Error(kind_, context + ": " + message_);
    }
    Error with_context(const std::string& context) && {
        message_ = context + ": " + message_;
        return std::move(*this);
    }

private:
    ErrorKind kind_;
    std::string message_;
};

// An Error from errno after a failed system call, with what was being done.
inline Error errno_error(ErrorKind kind, const std::string& what, int err = errno) {
    return Error(kind, what + ": " + std::strerror(err));
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const& { return error_; }
    Error&& error() && { return std::move(error_); }

private:
    Error error_{ErrorKind::internal, ""};
    bool failed_ = false;
};

using Status = Result<void>;

}  // namespace activate

// Early return of a failed Result from the enclosing function, which must return a Result too.
#define ACTIVATE_TRY(expr)                                       \
    do {                                                         \
        if (auto activate_try_r_ = (expr); !activate_try_r_.ok()) \
            return std::move(activate_try_r_).error();           \
    } while (0)

// Binds the value of a Result or returns its error: ACTIVATE_ASSIGN(auto x, f());
#define ACTIVATE_CONCAT_INNER(a, b) a##b
#define ACTIVATE_CONCAT(a, b) ACTIVATE_CONCAT_INNER(a, b)
#define ACTIVATE_ASSIGN(decl, expr) ACTIVATE_ASSIGN_IMPL(ACTIVATE_CONCAT(activate_r_, __LINE__), decl, expr)
#define ACTIVATE_ASSIGN_IMPL(tmp, decl, expr)      \
    auto tmp = (expr);                             \
    if (!tmp.ok()) return std::move(tmp).error();  \
    decl = std::move(tmp).value()
