// `activate takeover-message encode|decode` as contrib/ansible runs it: JSON in, the exact protobuf
// bytes `takeover` reads out; a TakeoverResponse in, protobuf's JSON mapping out; bad input refused
// with exit 5 (2 for the command line), a message naming what is wrong, and nothing on stdout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "takeover.pb.h"
#include "test_support.hpp"

namespace activate {
namespace {

using nlohmann::json;
using test::run;

const std::string kBin = ACTIVATE_BINARY;

TEST(TakeoverMessageCli, EncodeWritesTheTakeoverInitTakeoverReads) {
    // "Y2EtYnl0ZXM=" is base64 of "ca-bytes": bytes fields are base64 in protobuf's JSON mapping.
    auto r = run({kBin, "takeover-message", "encode"},
                 R"({"machine_id":"host-2","bmaas_endpoint":"http://10.0.2.100:8080/announce",)"
                 R"("ca_certificate":"Y2EtYnl0ZXM="})");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    wire::TakeoverInit init;
    ASSERT_TRUE(init.ParseFromString(r.out));
    EXPECT_EQ(init.machine_id(), "host-2");
    EXPECT_EQ(init.bmaas_endpoint(), "http://10.0.2.100:8080/announce");
    EXPECT_EQ(init.ca_certificate(), "ca-bytes");
    // Exactly the message's bytes: nothing else on stdout.
    EXPECT_EQ(r.out, init.SerializeAsString());
    // protobuf's lowerCamelCase JSON names are accepted too.
    auto camel = run({kBin, "takeover-message", "encode"}, R"({"machineId":"host-2"})");
    ASSERT_EQ(camel.exit_code, 0) << camel.err;
    ASSERT_TRUE(init.ParseFromString(camel.out));
    EXPECT_EQ(init.machine_id(), "host-2");
}

TEST(TakeoverMessageCli, DecodePrintsTheResponseWithItsKeyAndWarnings) {
    wire::TakeoverResponse response;
    auto* success = response.mutable_success();
    success->mutable_init_message()->set_machine_id("host-1");
    success->set_key(std::string(32, '\x01'));
    success->add_warning("skipped address 10.0.2.15/24 on enp0s2: dynamic");
    auto r = run({kBin, "takeover-message", "decode"}, response.SerializeAsString());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.out.back(), '\n');
    json j = json::parse(r.out);
    EXPECT_EQ(j["success"]["init_message"]["machine_id"], "host-1");
    // 32 bytes of 0x01 in base64.
    EXPECT_EQ(j["success"]["key"], "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    EXPECT_EQ(j["success"]["warning"], json::array({"skipped address 10.0.2.15/24 on enp0s2: "
                                                    "dynamic"}));

    wire::TakeoverResponse error;
    error.mutable_error()->set_message("kexec_file_load: EINVAL");
    auto e = run({kBin, "takeover-message", "decode"}, error.SerializeAsString());
    ASSERT_EQ(e.exit_code, 0) << e.err;
    EXPECT_EQ(json::parse(e.out)["error"]["message"], "kexec_file_load: EINVAL");
}

TEST(TakeoverMessageCli, BadInputIsRefusedWithExit5AndNothingOnStdout) {
    struct Case {
        const char* verb;
        std::string input;
        const char* says;
    };
    const Case cases[] = {
        // A misspelt field must not vanish: it would take over with an empty endpoint.
        {"encode", R"({"machine_id":"h","bmaas_endpiont":"1.2.3.4:80"})", "bmaas_endpiont"},
        {"encode", "machine_id: h", "not a TakeoverInit in JSON"},
        {"encode", R"({"machine_id":"h","ca_certificate":"not base64!"})", "ca_certificate"},
        {"encode", R"({"bmaas_endpoint":"1.2.3.4:80"})", "machine_id is empty"},
        {"decode", "", "stdin is empty"},
        {"decode", "\xff\xff\xff", "3 bytes that are not a TakeoverResponse"},
        // A valid protobuf message, but the response's oneof is unset.
        {"decode", wire::TakeoverInit().SerializeAsString() + std::string("\x18\x01", 2),
         "neither success nor error"},
    };
    for (const Case& c : cases) {
        auto r = run({kBin, "takeover-message", c.verb}, c.input);
        EXPECT_EQ(r.exit_code, 5) << c.verb << " " << c.input << ": " << r.err;
        EXPECT_EQ(r.out, "") << c.verb << " " << c.input;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << c.verb << ": " << r.err;
        EXPECT_NE(r.err.find("activate[activate] error: "), std::string::npos) << r.err;
    }
}

TEST(TakeoverMessageCli, BadCommandLineIsAUsageError) {
    for (const auto& argv :
         std::vector<std::vector<std::string>>{{kBin, "takeover-message"},
                                               {kBin, "takeover-message", "encrypt"},
                                               {kBin, "takeover-message", "encode", "extra"}}) {
        auto r = run(argv, "{}");
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find("encode or decode"), std::string::npos) << r.err;
    }
    auto help = run({kBin, "takeover-message", "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("TakeoverResponse"), std::string::npos);
    EXPECT_NE(run({kBin, "--help"}).out.find("takeover-message encode|decode"), std::string::npos);
}

}  // namespace
}  // namespace activate
