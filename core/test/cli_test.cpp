// The `activate` binary as users run it: exit codes, stdout carrying only protocol output.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "takeover.pb.h"
#include "test_support.hpp"

namespace activate {
namespace {

using test::run;

const std::string kBin = ACTIVATE_BINARY;

std::string policy_file(const test::TempDir& dir, const std::string& yaml) {
    test::write_file(dir / "policy.yaml", yaml);
    return (dir / "policy.yaml").string();
}

const char* kPolicy = "protocol: stdio-protobuf\nactivation_mode: kexec\ndelay: 0\n"
                      "payload: {plugin: fake}\nactivation: {plugin: fake}\n";

TEST(Cli, HelpAndVersion) {
    auto help = run({kBin, "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
    auto version = run({kBin, "--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_EQ(version.out.rfind("activate " ACTIVATE_VERSION, 0), 0u) << version.out;
}

TEST(Cli, HelpShowsTheSocketAsOptional) {
    // README and docs/serve.md: --socket defaults to /run/activate/activate.sock.
    auto help = run({kBin, "--help"});
    EXPECT_NE(help.out.find(" serve --policy FILE [--policy FILE ...] [--socket PATH]\n"),
              std::string::npos)
        << help.out;
    EXPECT_NE(help.out.find(" request --bundle URL --mode none|reboot|kexec [--socket PATH]\n"),
              std::string::npos)
        << help.out;
}

TEST(Cli, UsageErrorsExitTwoWithNothingOnStdout) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{kBin}, {kBin, "--bogus"}, {kBin, "frobnicate"},
          {kBin, "--policy", "x", "--log-level", "loud"}, {kBin, "status", "--dry-run"}}) {
        auto r = run(args);
        EXPECT_EQ(r.exit_code, 2) << args.back() << ": " << r.err;
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find("error:"), std::string::npos);
    }
}

TEST(Cli, PolicyErrorExitsThreeNamingFileAndLine) {
    test::TempDir dir;
    std::string p = policy_file(dir, "activation_mode: sideways\n");
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find(p + ":1:18: activation_mode"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(Cli, PluginLoadErrorExitsFour) {
    test::TempDir dir;
    std::string p = policy_file(dir, "activation_mode: kexec\npayload: {plugin: wrongabi}\n"
                                     "activation: {plugin: fake}\n");
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run"});
    EXPECT_EQ(r.exit_code, 4) << r.err;
}

TEST(Cli, PluginDirFromEnvironment) {
    test::TempDir dir;
    std::string p = policy_file(dir, kPolicy);
    ::setenv("ACTIVATE_PLUGIN_DIR", FAKE_PLUGIN_DIR, 1);
    auto r = run({kBin, "--policy", p, "--dry-run"});
    ::unsetenv("ACTIVATE_PLUGIN_DIR");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("fake.so"), std::string::npos);
}

TEST(Cli, DryRunPrintsThePlanAndTouchesNothing) {
    test::TempDir dir, root;
    std::string p = policy_file(dir, kPolicy);
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                  root.path().string(), "--dry-run", "--set", "delay=3s"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("activation_mode: kexec"), std::string::npos);
    EXPECT_NE(r.out.find("delay: 3000 ms"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::is_empty(root.path()));
}

TEST(Cli, SetOverrideReachesPluginValidation) {
    test::TempDir dir;
    std::string p = policy_file(dir, kPolicy);
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run", "--set",
                  "payload.settings.wat=1"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("payload.settings.wat: unknown setting"), std::string::npos) << r.err;
}

TEST(Cli, TakeoverWritesOnlyTheResponseOnStdout) {
    test::TempDir dir, root;
    std::string p = policy_file(dir, kPolicy);
    wire::TakeoverInit init;
    init.set_machine_id("cli");
    init.set_bmaas_endpoint("e:1");
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                  root.path().string()},
                 init.SerializeAsString());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(r.out));
    EXPECT_TRUE(response.has_success());
    EXPECT_EQ(response.SerializeAsString(), r.out);  // nothing but the one message

    auto bad = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                    root.path().string()},
                   "");
    EXPECT_EQ(bad.exit_code, 5);
    ASSERT_TRUE(response.ParseFromString(bad.out));
    EXPECT_TRUE(response.has_error());
}

// Another activation holds the lock (here a process that holds the flock, as a running activate
// or a waiting second stage does): both pipelines fail at once with exit 7.
TEST(Cli, HeldLockExitsSevenForUpdateAndTakeover) {
    test::TempDir dir, root;
    std::filesystem::create_directories(root / "run/activate");
    const std::string lock = (root / "run/activate/lock").string();
    test::write_file(dir / "ready", "");
    const pid_t holder = ::fork();
    if (holder == 0) {
        ::setpgid(0, 0);  // flock, sh and sleep go together at the end
        ::execlp("flock", "flock", lock.c_str(), "sh", "-c",
                 ("rm " + (dir / "ready").string() + "; sleep 10").c_str(), nullptr);
        ::_exit(127);
    }
    for (int i = 0; i < 200 && std::filesystem::exists(dir / "ready"); ++i)
        ::usleep(25000);
    ASSERT_FALSE(std::filesystem::exists(dir / "ready")) << "flock did not take the lock";

    const std::string update = policy_file(
        dir, "activation_mode: kexec\npayload: {plugin: fake, settings: {uses_slots: true}}\n"
             "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    auto u = run({kBin, "--policy", update, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                  root.path().string(), "--bundle", "b.zip"});
    EXPECT_EQ(u.exit_code, 7) << u.err;
    EXPECT_NE(u.err.find("another activation is in progress"), std::string::npos) << u.err;
    EXPECT_FALSE(std::filesystem::exists(root / "slot-B"));

    wire::TakeoverInit init;
    init.set_machine_id("cli");
    init.set_bmaas_endpoint("e:1");
    auto t = run({kBin, "--policy", policy_file(dir, kPolicy), "--plugin-dir", FAKE_PLUGIN_DIR,
                  "--sysroot", root.path().string()},
                 init.SerializeAsString());
    EXPECT_EQ(t.exit_code, 7) << t.err;
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(t.out));
    EXPECT_TRUE(response.has_error());
    EXPECT_FALSE(std::filesystem::exists(root / "run/activate/kexec/kernel"));
    ::kill(-holder, SIGKILL);
    ::waitpid(holder, nullptr, 0);
}

}  // namespace
}  // namespace activate

namespace activate {
namespace {

TEST(Cli, StatusPrintsJsonOrIndentedText) {
    test::TempDir dir, root;
    test::write_file(dir / "u.yaml", "activation_mode: kexec\npayload:\n  plugin: fake\n  settings: "
                                     "{uses_slots: true}\nactivation: {plugin: fake}\n"
                                     "boot_control: {plugin: fake}\n");
    auto json = test::run({ACTIVATE_BINARY, "status", "--json", "--policy",
                           (dir / "u.yaml").string(), "--plugin-dir", FAKE_PLUGIN_DIR,
                           "--sysroot", root.path().string()});
    EXPECT_EQ(json.exit_code, 0) << json.err;
    EXPECT_EQ(json.out,
              "{\"running_slot\":\"A\",\"target_slot\":\"B\",\"kexec_loaded\":false,\"boot\":{}}\n");
    auto text = test::run({ACTIVATE_BINARY, "status", "--policy", (dir / "u.yaml").string(),
                           "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", root.path().string()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("\n  \"running_slot\": \"A\",\n"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace activate
