// Kernel command line tokenizer and printer. The tokenizer reproduces the behaviour of next_arg()
// (lib/cmdline.c) byte for byte; the printer picks, for each parameter, a spelling and proves it
// by running that tokenizer on it, so a printed line always reads back as the same parameters.
#include <activate/escape.hpp>
#include <activate/kernel_cmdline.hpp>
#include <array>
#include <cstdio>

namespace activate {
namespace {

constexpr size_t kNone = std::string_view::npos;

// One word as next_arg() splits it. `name` and `value` are slices of the input: the kernel only
// ever removes quotes at the ends, never inside.
struct Token {
    std::string_view name;
    std::optional<std::string_view> value;
    size_t end;  // one past the word's last byte; the separator (if any) starts here
};

size_t skip_space(std::string_view text, size_t pos) {
    while (pos < text.size() && is_kernel_space(text[pos])) ++pos;
    return pos;
}

// `pos` is at a non-space byte. The rules of next_arg():
//  - a word ends at whitespace outside double quotes; every '"' toggles "inside quotes", so a
//    quote may open mid-word (foo="a b") and an unclosed quote runs to the end of the line;
//  - the first '=' splits name and value, except an '=' as the word's first byte (after an
//    opening quote), which the kernel's "equals == 0 means none" check skips;
//  - a word starting with '"' loses that quote, a value starting with '"' loses that quote, and
//    in either case a '"' as the word's last byte is dropped too (once).
Token next_token(std::string_view text, size_t pos) {
    size_t begin = pos;
    bool quoted = false;
    bool in_quote = false;
    if (text[begin] == '"') {
        ++begin;
        quoted = in_quote = true;
    }
    size_t equals = kNone;
    size_t end = begin;
    for (; end < text.size(); ++end) {
        const char c = text[end];
        if (!in_quote && is_kernel_space(c)) break;
        if (equals == kNone && c == '=' && end != begin) equals = end;
        if (c == '"') in_quote = !in_quote;
    }
    size_t value_begin = equals == kNone ? kNone : equals + 1;
    bool value_quoted = false;
    if (value_begin != kNone && value_begin < end && text[value_begin] == '"') {
        ++value_begin;
        value_quoted = true;
    }
    const bool strip_last = end > begin && text[end - 1] == '"' && (quoted || value_quoted);
    const size_t stop = strip_last ? end - 1 : end;

    Token token;
    token.end = end;
    if (equals == kNone) {
        token.name = text.substr(begin, stop - begin);
    } else {
        token.name = text.substr(begin, equals - begin);
        // A value that is just the opening quote ends before it starts: empty.
        token.value =
            value_begin < stop ? text.substr(value_begin, stop - value_begin) : std::string_view();
    }
    return token;
}

bool is_terminator(std::string_view name, const std::optional<std::string_view>& value) {
    // parse_args() stops at a word whose name is "--" and has no '=' (quoted or not).
    return !value && name == "--";
}

// Quotes a byte string for an error message: printable ASCII as is, the rest as \xNN.
std::string shown(std::string_view text) { return "\"" + escape_bytes(text) + "\""; }

// Whether `word` reads back as exactly (name, value). Unless it is the line's last word it must
// also end before the separator that follows it, i.e. not leave a quote open that would swallow
// the next word.
bool reads_back(const std::string& word, std::string_view name,
                const std::optional<std::string_view>& value, bool last) {
    if (word.empty() || is_kernel_space(word[0])) return false;
    const std::string text = last ? word : word + ' ';
    const Token token = next_token(text, 0);
    return token.end == word.size() && token.name == name && token.value == value;
}

// Every word the kernel reads as (name, value) has the form
//   [opening quote] name ["=" [value quote] value] [closing quote]
// where the closing quote is only removed when one of the others is present. Trying all of
// these shapes therefore finds a spelling whenever one exists; the plain ones come first.
Result<std::string> spell(std::string_view name, const std::optional<std::string_view>& value,
                          bool last, const std::string& what) {
    if (name.find('\0') != kNone || (value && value->find('\0') != kNone)) {
        return Error(ErrorKind::input, what +
                                           " contains a NUL byte, which ends the kernel "
                                           "command line; remove it");
    }
    if (is_terminator(name, value)) {
        return Error(ErrorKind::input, what +
                                           " is a bare \"--\", which the kernel reads as the "
                                           "end of its parameters; drop it");
    }
    struct Shape {
        bool open, value_quote, close;
    };
    static constexpr std::array<Shape, 7> shapes{{
        {false, false, false},  // name=value
        {false, true, true},    // name="value"
        {true, false, true},    // "name=value"
        {false, true, false},
        {true, false, false},
        {true, true, true},
        {true, true, false},
    }};
    for (const Shape& shape : shapes) {
        if (shape.value_quote && !value) continue;
        std::string word;
        if (shape.open) word += '"';
        word += name;
        if (value) {
            word += '=';
            if (shape.value_quote) word += '"';
            word += *value;
        }
        if (shape.close) word += '"';
        if (reads_back(word, name, value, last)) return word;
    }
    if (value && name.empty()) {
        return Error(ErrorKind::input,
                     what + " has an empty name; the kernel would read \"=" + std::string(*value) +
                         "\" as a name without value; give the parameter a name");
    }
    if (value && name.find('=', 1) != kNone) {
        return Error(ErrorKind::input, what + " has '=' in its name " + shown(name) +
                                           "; the kernel splits at the first '='; rename it");
    }
    return Error(ErrorKind::input,
                 what +
                     " cannot be quoted so the kernel reads it back unchanged (its double "
                     "quotes and whitespace would be split or stripped differently); remove "
                     "the double quotes or the whitespace");
}

std::string describe(std::string_view name, const std::optional<std::string_view>& value) {
    return "kernel parameter " + shown(name) + (value ? "=" + shown(*value) : std::string());
}

}  // namespace

bool is_kernel_space(char c) {
    switch (static_cast<unsigned char>(c)) {
        case '\t':
        case '\n':
        case '\v':
        case '\f':
        case '\r':
        case ' ':
        case 0xa0:
            return true;
        default:
            return false;
    }
}

KernelCmdline parse_kernel_cmdline(std::string_view text) {
    text = text.substr(0, text.find('\0'));
    KernelCmdline cmdline;
    bool init_part = false;
    for (size_t pos = skip_space(text, 0); pos < text.size();) {
        const Token token = next_token(text, pos);
        pos = skip_space(text, token.end);
        if (is_terminator(token.name, token.value)) {
            if (init_part) break;  // the kernel ignores what follows a second "--"
            init_part = true;
            continue;
        }
        if (init_part) {
            // set_init_arg() (init/main.c) puts the '=' back between name and value.
            std::string arg(token.name);
            if (token.value) arg.append("=").append(*token.value);
            cmdline.init_args.push_back(std::move(arg));
        } else {
            cmdline.params.push_back(
                KernelParam{std::string(token.name),
                            token.value ? std::optional<std::string>(*token.value) : std::nullopt});
        }
    }
    return cmdline;
}

Result<std::string> format_kernel_cmdline(const KernelCmdline& cmdline) {
    std::string out;
    const size_t words = cmdline.params.size() + cmdline.init_args.size();
    size_t index = 0;
    for (const KernelParam& param : cmdline.params) {
        const std::optional<std::string_view> value =
            param.value ? std::optional<std::string_view>(*param.value) : std::nullopt;
        ACTIVATE_ASSIGN(std::string word,
                        spell(param.name, value, ++index == words, describe(param.name, value)));
        if (!out.empty()) out += ' ';
        out += word;
    }
    if (!cmdline.init_args.empty()) {
        if (!out.empty()) out += ' ';
        out += "--";
    }
    for (const std::string& arg : cmdline.init_args) {
        // The kernel reads an init argument as a parameter too and rejoins it: split at the
        // first '=' it would split at.
        const size_t equals = arg.find('=', 1);
        const std::string_view name = std::string_view(arg).substr(0, equals);
        const std::optional<std::string_view> value =
            equals == kNone
                ? std::nullopt
                : std::optional<std::string_view>(std::string_view(arg).substr(equals + 1));
        ACTIVATE_ASSIGN(std::string word,
                        spell(name, value, ++index == words, "init argument " + shown(arg)));
        out += ' ';
        out += word;
    }
    return out;
}

std::vector<std::string> values_of(const KernelCmdline& cmdline, std::string_view name) {
    std::vector<std::string> values;
    for (const KernelParam& param : cmdline.params) {
        if (param.name == name && param.value) values.push_back(*param.value);
    }
    return values;
}

}  // namespace activate
