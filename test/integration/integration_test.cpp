// The real plugins and binaries on temporary sysroots: nothing here can touch the host, since
// every run passes --sysroot and kexec/reboot are then only recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <activate_test/pipeline_steps.hpp>

#include "takeover.pb.h"

namespace {

namespace fs = std::filesystem;

struct Outcome {
    int code;
    std::string out, err;
};

class Sandbox {
public:
    Sandbox() {
        std::string t = (fs::temp_directory_path() / "activate-it-XXXXXX").string();
        root_ = ::mkdtemp(t.data());
    }
    ~Sandbox() { fs::remove_all(root_); }
    const fs::path& root() const { return root_; }
    void write(const std::string& rel, const std::string& content) const {
        fs::create_directories((root_ / rel).parent_path());
        std::ofstream(root_ / rel, std::ios::binary) << content;
    }
    std::string read(const std::string& rel) const {
        std::ifstream in(root_ / rel, std::ios::binary);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    fs::path root_;
};

// Runs a shell command line with stdin from a file, capturing stdout and stderr.
Outcome sh(const Sandbox& box, const std::string& command, const std::string& input = "") {
    box.write(".io/in", input);
    std::string full = "(" + command + ") <" + (box.root() / ".io/in").string() + " >" +
                       (box.root() / ".io/out").string() + " 2>" +
                       (box.root() / ".io/err").string();
    int status = std::system(full.c_str());
    return {WEXITSTATUS(status), box.read(".io/out"), box.read(".io/err")};
}

TEST(ShippedPolicies, EveryConfigValidatesWithTheRealPlugins) {
    for (const char* policy : {"takeover.yaml", "update-kexec.yaml", "update-efi.yaml"}) {
        Sandbox box;
        Outcome r = sh(box, std::string(ACTIVATE_BINARY) + " --policy " SOURCE_DIR "/config/" +
                            policy + " --plugin-dir " PLUGIN_DIR " --sysroot " +
                            box.root().string() + " --dry-run");
        EXPECT_EQ(r.code, 0) << policy << ": " << r.err;
        EXPECT_NE(r.out.find("steps:"), std::string::npos) << policy;
        EXPECT_NE(r.out.find(PLUGIN_DIR), std::string::npos) << policy;
        // A dry run touches nothing under the sysroot.
        EXPECT_FALSE(fs::exists(box.root() / "run")) << policy;
    }
}

TEST(TakeoverBinary, HasBuiltInPluginsAndPolicy) {
    Sandbox box;
    Outcome r = sh(box, std::string(TAKEOVER_BINARY) + " --dry-run --sysroot " + box.root().string());
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("payload: embedded"), std::string::npos);
    EXPECT_NE(r.out.find("(built-in)"), std::string::npos);
    EXPECT_NE(r.out.find("policy: <built-in config/takeover.yaml>"), std::string::npos);
}

// The whole takeover on a sysroot: recorded rtnetlink dumps of a bonded, VLAN'd guest stand in
// for the live network; the response, the staged bytes and the delayed jump are checked.
// `program` is the self-contained takeover or activate with the takeover policy and .so plugins.
void check_full_takeover(const std::string& program) {
    Sandbox box;
    box.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda1 console=tty0 console=ttyS0,115200n8 quiet\n");
    box.write("etc/resolv.conf", "nameserver 192.0.2.53\nnameserver 2001:db8::53\n");
    fs::create_directories(box.root() / "dumps");
    for (const char* f : {"links.nl", "addrs.nl", "routes.nl"})
        fs::copy_file(fs::path(TESTDATA_DIR) / "netlink-bond-vlan" / f, box.root() / "dumps" / f);

    activate::wire::TakeoverInit init;
    init.set_machine_id("it-machine");
    init.set_bmaas_endpoint("bmaas.example:443");
    init.set_ca_certificate(std::string("\0CA\xff", 4));
    auto start = std::chrono::steady_clock::now();
    Outcome r = sh(box,
               program + " --sysroot " + box.root().string() +
                   " --set delay=1s --set captures.0.settings.dump_dir=/dumps",
               init.SerializeAsString());
    ASSERT_EQ(r.code, 0) << r.err;
    activate::wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(r.out));
    ASSERT_TRUE(response.has_success()) << response.DebugString();
    EXPECT_EQ(response.success().init_message().SerializeAsString(), init.SerializeAsString());
    ASSERT_EQ(response.success().key().size(), 32u);

    // Command line: the policy's parameters plus the running kernel's consoles, in order.
    EXPECT_EQ(box.read("run/activate/kexec/cmdline"),
              "quiet init=/init console=tty0 console=ttyS0,115200n8");
    // The staged initramfs is the embedded agent initramfs, byte for byte, followed by one
    // appended frame that lists exactly init.pb and holds our AgentInit.
    std::string initramfs = box.read("run/activate/kexec/initramfs");
    std::ifstream agent_file(AGENT_INITRAMFS, std::ios::binary);
    std::string agent_bytes((std::istreambuf_iterator<char>(agent_file)), {});
    ASSERT_GT(initramfs.size(), agent_bytes.size());
    EXPECT_EQ(initramfs.substr(0, agent_bytes.size()), agent_bytes);
    box.write("appended.zst", initramfs.substr(agent_bytes.size()));
    std::string staged = (box.root() / "appended.zst").string();
    Outcome listing = sh(box, "zstd -dc " + staged + " | cpio -it 2>/dev/null");
    EXPECT_EQ(listing.out, "init.pb\n");
    fs::create_directories(box.root() / "x");
    Outcome extract = sh(box, "cd " + (box.root() / "x").string() + " && zstd -dc " + staged +
                              " | cpio -id init.pb 2>/dev/null");
    activate::wire::AgentInit agent;
    ASSERT_TRUE(agent.ParseFromString(box.read("x/init.pb")));
    EXPECT_EQ(agent.takeover_init().machine_id(), "it-machine");
    EXPECT_EQ(agent.private_key().substr(32), response.success().key());
    bool bond = false;
    for (const auto& i : agent.network_config().interface()) bond |= i.has_bond();
    EXPECT_TRUE(bond) << agent.network_config().DebugString();
    ASSERT_EQ(agent.network_config().nameserver_size(), 2);
    EXPECT_EQ(agent.network_config().nameserver(0).ip(), "192.0.2.53");
    // The embedded kernel is staged byte for byte.
    EXPECT_EQ(box.read("run/activate/kexec/kernel").substr(0x202, 4), "HdrS");

    // The jump comes from the detached second stage, after the delay.
    while (!fs::exists(box.root() / "run/activate/reboot") &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(20))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(box.read("run/activate/reboot"), "kexec\n");
}

TEST(TakeoverBinary, StagesAgentWithInitPbAndJumpsAfterTheResponse) {
    check_full_takeover(TAKEOVER_BINARY);
}

// The installed engine does the same with the shipped policy and the plugins as shared objects.
TEST(ShippedPolicies, TakeoverPolicyWithPluginsStagesTheAgentAndJumps) {
    check_full_takeover(std::string(ACTIVATE_BINARY) + " --policy " SOURCE_DIR
                        "/config/takeover.yaml --plugin-dir " PLUGIN_DIR);
}

// Issue 14 §1: the dry run prints exactly the steps a run executes. The takeover policy and odd
// combinations of its plugins run through `activate` and the real embedded, kexec and netcapture
// plugins on a sysroot (kexec and the jump only recorded there): the steps the run logged are the
// plan's, step for step, and the kexec image and the jump happened exactly when the plan has a
// step for them.
struct TakeoverCase {
    const char* name;
    const char* sets;  // --set arguments on config/takeover.yaml
    bool protocol;     // speaks the stdio protocol (gets a TakeoverInit)
};

std::ostream& operator<<(std::ostream& out, const TakeoverCase& c) { return out << c.name; }

class TakeoverPlan : public ::testing::TestWithParam<TakeoverCase> {};

TEST_P(TakeoverPlan, TheRunExecutesExactlyThePlannedSteps) {
    Sandbox box;
    box.write("proc/cmdline", "console=ttyS0\n");
    box.write("etc/resolv.conf", "nameserver 192.0.2.53\n");
    fs::create_directories(box.root() / "dumps");
    for (const char* f : {"links.nl", "addrs.nl", "routes.nl"})
        fs::copy_file(fs::path(TESTDATA_DIR) / "netlink-bond-vlan" / f, box.root() / "dumps" / f);
    const std::string command = std::string(ACTIVATE_BINARY) +
                                " --policy " SOURCE_DIR "/config/takeover.yaml --plugin-dir " PLUGIN_DIR
                                " --sysroot " + box.root().string() + " --set delay=0s " +
                                GetParam().sets;

    Outcome dry = sh(box, command + " --dry-run");
    ASSERT_EQ(dry.code, 0) << dry.err;
    const std::vector<std::string> planned = activate::test_support::planned_steps(dry.out);
    ASSERT_FALSE(planned.empty()) << dry.out;
    // System paths only: the plan says where the sysroot is once, in its header.
    EXPECT_EQ(dry.out.substr(dry.out.find("\nsteps:\n")).find(box.root().string()),
              std::string::npos)
        << dry.out;

    activate::wire::TakeoverInit init;
    init.set_machine_id("plan-machine");
    init.set_bmaas_endpoint("bmaas.example:443");
    Outcome run = sh(box, command + " --log-level debug",
                     GetParam().protocol ? init.SerializeAsString() : "");
    ASSERT_EQ(run.code, 0) << run.err;
    EXPECT_EQ(activate::test_support::executed_steps(run.err), planned)
        << "plan:\n" << dry.out << "run:\n" << run.err;

    auto has = [&](const std::string& step) {
        return std::find(planned.begin(), planned.end(), step) != planned.end();
    };
    EXPECT_EQ(fs::exists(box.root() / "run/activate/kexec/kernel"), has("stage [kexec]"));
    // The detached second stage records the jump a moment after the run returned.
    const auto start = std::chrono::steady_clock::now();
    while (has("jump [kexec]") && !fs::exists(box.root() / "run/activate/reboot") &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(20))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(fs::exists(box.root() / "run/activate/reboot"), has("jump [kexec]"));
    if (GetParam().protocol) {
        activate::wire::TakeoverResponse response;
        ASSERT_TRUE(response.ParseFromString(run.out));
        EXPECT_TRUE(response.has_success()) << response.DebugString();
    }
}

INSTANTIATE_TEST_SUITE_P(
    ShippedAndOdd, TakeoverPlan,
    ::testing::Values(
        TakeoverCase{"Takeover", "--set captures.0.settings.dump_dir=/dumps", true},
        // Without netcapture: no capture step, the agent gets no network configuration.
        TakeoverCase{"TakeoverWithoutCapture", "--set captures=[]", true},
        // Staged and answered, no jump.
        TakeoverCase{"TakeoverWithoutJump",
                     "--set captures.0.settings.dump_dir=/dumps --set activation_mode=none", true},
        // embedded + kexec without the protocol: no message, no capture, no response.
        TakeoverCase{"EmbeddedByKexecWithoutProtocol", "--set protocol=none --set captures=[]",
                     false}),
    [](const ::testing::TestParamInfo<TakeoverCase>& info) { return info.param.name; });

TEST(TakeoverBinary, BadInputAnswersAnErrorAndStagesNothing) {
    Sandbox box;
    box.write("proc/cmdline", "console=ttyS0\n");
    Outcome r = sh(box, std::string(TAKEOVER_BINARY) + " --sysroot " + box.root().string(),
               "definitely not protobuf \xff\xff\xff");
    EXPECT_EQ(r.code, 5) << r.err;
    activate::wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(r.out));
    ASSERT_TRUE(response.has_error());
    // Logged once on stderr, with the message the client got.
    const std::string& message = response.error().message();
    ASSERT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(message), r.err.rfind(message)) << r.err;
    EXPECT_FALSE(fs::exists(box.root() / "run/activate/kexec/kernel"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(fs::exists(box.root() / "run/activate/reboot"));
}

// The client over SSH decodes stdout whatever went wrong: errors found before the pipeline (a bad
// override, an unreadable policy, a plugin that cannot load) are answered as a TakeoverError too.
TEST(TakeoverBinary, ErrorsBeforeThePipelineAreAnsweredToo) {
    Sandbox box;
    const std::string takeover = std::string(TAKEOVER_BINARY) + " --sysroot " + box.root().string();
    const std::string activate = std::string(ACTIVATE_BINARY) + " --sysroot " + box.root().string() +
                                 " --policy " SOURCE_DIR "/config/takeover.yaml";
    const std::pair<std::string, std::string> cases[] = {
        {takeover + " --set no_such_key=1", "no_such_key"},
        {takeover + " --policy " + (box.root() / "missing.yaml").string(), "missing.yaml"},
        // A directory used to abort on an uncaught std::ios_failure, answering nothing.
        {takeover + " --policy " + (box.root() / "policies").string(),
         "policies: cannot read the policy file: it is a directory"},
        // An added directory is searched first: its broken embedded.so is what gets loaded.
        {activate + " --plugin-dir " + (box.root() / "bad-plugins").string(),
         (box.root() / "bad-plugins/embedded.so").string()},
        // takeover too, before its built-in plugins, from --plugin-dir or $ACTIVATE_PLUGIN_PATH.
        {takeover + " --plugin-dir " + (box.root() / "bad-plugins").string(),
         (box.root() / "bad-plugins/embedded.so").string()},
        {"ACTIVATE_PLUGIN_PATH=" + (box.root() / "bad-plugins").string() + " " + takeover,
         (box.root() / "bad-plugins/embedded.so").string()},
        // Options too: one of another verb, and one of none.
        {takeover + " --json", "--json belongs to 'status', not to 'run'"},
        {takeover + " --bogus", "unrecognised option '--bogus'"},
    };
    fs::create_directories(box.root() / "policies");
    fs::create_directories(box.root() / "bad-plugins");
    box.write("bad-plugins/embedded.so", "not an ELF file\n");
    for (const auto& [command, mention] : cases) {
        Outcome r = sh(box, command);
        EXPECT_NE(r.code, 0) << command;
        activate::wire::TakeoverResponse response;
        ASSERT_TRUE(response.ParseFromString(r.out)) << command;
        ASSERT_TRUE(response.has_error()) << command;
        EXPECT_NE(response.error().message().find(mention), std::string::npos)
            << command << ": " << response.error().message();
        EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
    }
    // Not a takeover run: a dry run's stdout is the plan, an update's errors are not answered.
    Outcome dry = sh(box, takeover + " --dry-run --set no_such_key=1");
    EXPECT_EQ(dry.code, 3);
    EXPECT_EQ(dry.out, "");
    EXPECT_FALSE(fs::exists(box.root() / "run/activate/kexec/kernel"));
}

// libprotobuf's own complaint about a string field that is not UTF-8 comes out in the log
// format (component "protobuf"), like every other stderr line of the static binary.
TEST(TakeoverBinary, ProtobufDiagnosticsUseTheLogFormat) {
    Sandbox box;
    box.write("proc/cmdline", "console=ttyS0\n");
    // TakeoverInit{machine_id (1) = "\xff\xfe", bmaas_endpoint (2) = "e:1"}, encoded by hand.
    Outcome r = sh(box, std::string(TAKEOVER_BINARY) + " --sysroot " + box.root().string(),
                   std::string("\x0a\x02\xff\xfe\x12\x03", 6) + "e:1");
    EXPECT_EQ(r.code, 5) << r.err;
    const std::regex format(R"(activate\[[A-Za-z0-9_.-]+\] (debug|info|warning|error): .+)");
    std::istringstream lines(r.err);
    int count = 0;
    for (std::string line; std::getline(lines, line); ++count)
        EXPECT_TRUE(std::regex_match(line, format)) << line;
    EXPECT_GE(count, 2) << r.err;
    EXPECT_NE(r.err.find("activate[protobuf] warning: String field "
                         "'activate.wire.TakeoverInit.machine_id' contains invalid UTF-8"),
              std::string::npos)
        << r.err;
    activate::wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(r.out));
    EXPECT_TRUE(response.has_error());
    EXPECT_FALSE(fs::exists(box.root() / "run/activate/kexec/kernel"));
}

// The static binary has no tool verbs: asked for one, it says where they are (usage, exit 2)
// instead of reading a TakeoverInit or treating the name as an unknown engine verb.
TEST(TakeoverBinary, NamesTheActivateBinaryForToolVerbs) {
    Sandbox box;
    for (const std::string verb : {"bundle", "takeover-message"}) {
        Outcome r = sh(box, std::string(TAKEOVER_BINARY) + " " + verb + " info");
        EXPECT_EQ(r.code, 2) << verb << ": " << r.err;
        EXPECT_EQ(r.out, "") << verb;
        EXPECT_NE(r.err.find("'" + verb + "' is not part of takeover; use the activate binary"),
                  std::string::npos)
            << r.err;
    }
}

TEST(TakeoverBinary, TakesAPolicyFileInsteadOfItsOwn) {
    Sandbox box;
    Outcome r = sh(box, std::string(TAKEOVER_BINARY) + " --policy " SOURCE_DIR
                                                         "/config/takeover.yaml --dry-run --sysroot " +
                            box.root().string());
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("policy: " SOURCE_DIR "/config/takeover.yaml"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(built-in)"), std::string::npos) << r.out;
}

// It is copied onto machines that have nothing but a kernel and busybox: no dynamic loader.
TEST(TakeoverBinary, IsStaticallyLinked) {
    if (!TAKEOVER_IS_STATIC) GTEST_SKIP() << "a sanitized tree links takeover dynamically";
    std::ifstream in(TAKEOVER_BINARY, std::ios::binary);
    std::string elf(64, '\0');
    ASSERT_TRUE(in.read(elf.data(), 64));
    ASSERT_EQ(elf.substr(0, 4), "\x7f" "ELF");
    // ELF64: e_phoff at 32 (8 bytes), e_phentsize at 54, e_phnum at 56 (2 bytes each), LE.
    auto u = [&](const std::string& b, size_t at, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(b[at + i])) << (8 * i);
        return v;
    };
    const uint64_t phoff = u(elf, 32, 8), phentsize = u(elf, 54, 2), phnum = u(elf, 56, 2);
    std::string headers(phentsize * phnum, '\0');
    in.seekg(std::streamoff(phoff));
    ASSERT_TRUE(in.read(headers.data(), std::streamsize(headers.size())));
    for (uint64_t i = 0; i < phnum; ++i)
        EXPECT_NE(u(headers, i * phentsize, 4), 3u) << "PT_INTERP: takeover needs a dynamic loader";
}

}  // namespace
