// `activate takeover-message encode|decode`: the takeover stdio protocol
// (core/proto/takeover.proto) in protobuf's own JSON mapping, so that tools which cannot speak
// protobuf (the Ansible collection in contrib/ansible) build a TakeoverInit and read a
// TakeoverResponse without hand-made bytes.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <activate/log.hpp>
#include <activate/result.hpp>
#include <activate/takeover_message_cli.hpp>
#include <iostream>
#include <iterator>
#include <sstream>

#include "takeover.pb.h"

namespace activate {
namespace {

namespace json = google::protobuf::util;

constexpr const char* kHelp =
    " encode|decode\n"
    "  encode   reads a TakeoverInit as JSON on stdin (protobuf's JSON mapping: machine_id,\n"
    "           bmaas_endpoint, ca_certificate in base64) and writes its protobuf bytes to "
    "stdout,\n"
    "           the message `takeover` reads on its stdin\n"
    "  decode   reads a TakeoverResponse (what `takeover` wrote to its stdout) on stdin and\n"
    "           writes it as one line of JSON to stdout (bytes fields, such as the key, in "
    "base64)\n";

Result<std::string> read_stdin() {
    std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return Error(ErrorKind::internal, "reading stdin failed");
    return data;
}

// Everything is produced before anything is written, so a failure leaves stdout empty.
Status write_stdout(const std::string& data) {
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    std::cout.flush();
    if (!std::cout) return Error(ErrorKind::internal, "writing stdout failed");
    return {};
}

Status encode() {
    ACTIVATE_ASSIGN(std::string text, read_stdin());
    wire::TakeoverInit init;
    // Unknown fields are refused: a misspelt inventory variable must not vanish silently.
    json::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto parsed = json::JsonStringToMessage(text, &init, options);
    if (!parsed.ok())
        return Error(ErrorKind::input,
                     "stdin: not a TakeoverInit in JSON (fields machine_id, "
                     "bmaas_endpoint, ca_certificate): " +
                         std::string(parsed.message()));
    if (init.machine_id().empty())
        return Error(ErrorKind::input, "stdin: TakeoverInit.machine_id is empty");
    return write_stdout(init.SerializeAsString());
}

Status decode() {
    ACTIVATE_ASSIGN(std::string bytes, read_stdin());
    // takeover writes its response last; nothing means it failed before answering (its stderr
    // says why), and a response with neither result is not one the protocol has.
    if (bytes.empty())
        return Error(ErrorKind::input,
                     "stdin is empty: no TakeoverResponse (did takeover exit early? see its log)");
    wire::TakeoverResponse response;
    if (!response.ParseFromString(bytes))
        return Error(ErrorKind::input, "stdin: " + std::to_string(bytes.size()) +
                                           " bytes that are not a TakeoverResponse");
    if (response.result_case() == wire::TakeoverResponse::RESULT_NOT_SET)
        return Error(ErrorKind::input,
                     "stdin: a TakeoverResponse with neither success nor error (" +
                         std::to_string(bytes.size()) + " bytes)");
    json::JsonPrintOptions options;
    options.preserve_proto_field_names = true;  // machine_id, as in takeover.proto
    std::string text;
    auto printed = json::MessageToJsonString(response, &text, options);
    if (!printed.ok())
        return Error(ErrorKind::internal,
                     "printing the TakeoverResponse: " + std::string(printed.message()));
    return write_stdout(text + "\n");
}

}  // namespace

Status run_takeover_message_cli(int argc, char** argv, const std::string& program) {
    const std::string name = program + " takeover-message";
    const std::string sub = argc > 1 ? argv[1] : "";
    if (sub == "--help" || sub == "-h") {
        std::cout << "Usage: " << name << kHelp;
        return {};
    }
    if (argc != 2 || (sub != "encode" && sub != "decode"))
        return Error(ErrorKind::usage,
                          argc < 2
                              ? "missing subcommand: encode or decode (see '" + name + " --help')"
                              : "expected exactly one of encode or decode, got '" +
                                    std::string(argv[argc - 1]) + "' (see '" + name + " --help')");
    return sub == "encode" ? encode() : decode();
}

}  // namespace activate
