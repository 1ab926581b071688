// The `activate` binary as users run it: exit codes, stdout carrying only protocol output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/cli.hpp>
#include <chrono>
#include <filesystem>
#include <regex>
#include <sstream>

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

const char* kUpdatePolicy =
    "activation_mode: kexec\n"
    "payload: {plugin: fake_slots}\n"
    "activation: {plugin: fake}\nboot_control: {plugin: fake}\n";

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

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
    EXPECT_NE(help.out.find(" request --bundle URL --mode MODE [--socket PATH]\n"),
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

// Issue 14 §6, the verb table: `activate --help` lists every verb with its summary and no verb's
// options; `activate VERB --help` shows that verb's options and no other verb's.
TEST(Cli, HelpListsTheVerbsAndEachVerbsHelpItsOwnOptions) {
    auto help = run({kBin, "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    for (const char* verb :
         {"run", "status", "mark-good", "assess", "serve", "request", "bundle", "takeover-message"})
        EXPECT_TRUE(
            std::regex_search(help.out, std::regex(std::string("\n  ") + verb + " +[a-z][^\n]+\n")))
            << verb << " has no summary line in\n"
            << help.out;
    EXPECT_EQ(help.out.find("install a bundle older than the running slot"), std::string::npos)
        << help.out;

    struct Case {
        std::string verb;
        std::vector<std::string> takes, refuses;
    };
    const std::vector<Case> cases = {
        {"run",
         {"policy", "plugin-dir", "set", "sysroot", "log-level", "dry-run", "bundle", "progress",
          "allow-downgrade", "force"},
         {"json", "socket", "mode"}},
        {"status",
         {"policy", "plugin-dir", "set", "sysroot", "log-level", "json"},
         {"dry-run", "bundle", "progress", "allow-downgrade", "force", "socket", "mode"}},
        {"mark-good",
         {"policy", "plugin-dir", "set", "sysroot", "log-level"},
         {"json", "dry-run", "bundle", "force", "socket", "mode"}},
        {"assess",
         {"policy", "plugin-dir", "set", "sysroot", "log-level"},
         {"json", "dry-run", "bundle", "force", "socket", "mode"}},
        {"serve",
         {"policy", "plugin-dir", "set", "sysroot", "log-level", "socket"},
         {"json", "dry-run", "bundle", "progress", "force", "mode"}},
        {"request",
         {"sysroot", "log-level", "bundle", "mode", "socket"},
         {"policy", "plugin-dir", "set", "json", "dry-run", "progress", "force"}},
    };
    for (const Case& c : cases) {
        auto r = run({kBin, c.verb, "--help"});
        EXPECT_EQ(r.exit_code, 0) << c.verb << ": " << r.err;
        const std::string shown = c.verb == "run" ? "[run]" : c.verb;  // the default verb
        EXPECT_EQ(r.out.rfind("Usage: activate " + shown + " ", 0), 0u) << r.out;
        EXPECT_EQ(r.out.find("Verbs:"), std::string::npos) << r.out;
        // boost::program_options prints an option as "  --name" and then " arg" or spaces.
        for (const std::string& option : c.takes)
            EXPECT_NE(r.out.find("  --" + option + " "), std::string::npos)
                << c.verb << " --help lacks --" << option << ":\n"
                << r.out;
        for (const std::string& option : c.refuses)
            EXPECT_EQ(r.out.find("--" + option + " "), std::string::npos)
                << c.verb << " --help shows --" << option << ":\n"
                << r.out;
    }
}

// A verb does not know another verb's options: such an option is a usage error naming the verb(s)
// that take it, and nothing runs (the update policy would have installed into slot B).
TEST(Cli, AnOptionOfAnotherVerbIsRefusedNamingTheVerbsThatTakeIt) {
    test::TempDir dir, root;
    const std::string p = policy_file(dir, kUpdatePolicy);
    const std::vector<std::string> policy = {"--policy",      p,           "--plugin-dir",
                                             FAKE_PLUGIN_DIR, "--sysroot", root.path().string()};
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{"status", "--dry-run"}, "--dry-run belongs to 'run', not to 'status'"},
        {{"status", "--bundle", "/b.zip"},
         "--bundle belongs to 'run' and 'request', not to 'status'"},
        {{"--bundle", "/b.zip", "--json"}, "--json belongs to 'status', not to 'run'"},
        {{"run", "--bundle", "/b.zip", "--mode", "none"},
         "--mode belongs to 'request', not to 'run'"},
        {{"mark-good", "--force"}, "--force belongs to 'run', not to 'mark-good'"},
        {{"assess", "--allow-downgrade"}, "--allow-downgrade belongs to 'run', not to 'assess'"},
        {{"assess", "--socket", "s"}, "--socket belongs to 'serve' and 'request', not to 'assess'"},
        {{"serve", "--progress"}, "--progress belongs to 'run', not to 'serve'"},
    };
    for (const Case& c : cases) {
        std::vector<std::string> args = {kBin};
        args.insert(args.end(), c.args.begin(), c.args.end());
        args.insert(args.end(), policy.begin(), policy.end());
        auto r = run(args);
        EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
        EXPECT_EQ(r.out, "") << c.message;
        const std::vector<std::string> lines = lines_of(r.err);
        ASSERT_EQ(lines.size(), 1u) << r.err;
        EXPECT_NE(lines[0].find("error: " + c.message), std::string::npos) << lines[0];
        EXPECT_TRUE(std::filesystem::is_empty(root.path())) << c.message;
    }
    // `request` loads no policy: the policy options are not its own.
    auto request = run({kBin, "request", "--bundle", "/b.zip", "--mode", "none", "--policy", p});
    EXPECT_EQ(request.exit_code, 2) << request.err;
    EXPECT_NE(request.err.find("--policy belongs to 'run', 'status', 'mark-good', 'assess' and "
                               "'serve', not to 'request'"),
              std::string::npos)
        << request.err;
    // An option no verb takes is boost's plain complaint.
    auto bogus = run({kBin, "status", "--bogus", "--policy", p});
    EXPECT_EQ(bogus.exit_code, 2) << bogus.err;
    EXPECT_NE(bogus.err.find("unrecognised option '--bogus'"), std::string::npos) << bogus.err;
    EXPECT_EQ(bogus.err.find("belongs"), std::string::npos) << bogus.err;
}

TEST(Cli, AnUnknownVerbIsRefusedListingTheVerbs) {
    test::TempDir dir;
    auto r = run({kBin, "frobnicate", "--policy", policy_file(dir, kPolicy)});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("error: unknown command 'frobnicate'; the verbs are run, status, "
                         "mark-good, assess, serve, request, bundle, takeover-message"),
              std::string::npos)
        << r.err;
}

// Issue 14 §6: engine verbs and tool verbs (bundle, takeover-message) report a failure through
// the one path in run_cli: exactly one line on stderr in the log format, nothing on stdout, and
// the exit code of README's table for the error's kind.
TEST(Cli, EveryVerbFailsThroughTheOneReportingPath) {
    test::TempDir dir;
    const std::string missing = (dir / "missing.zip").string();
    struct Case {
        std::vector<std::string> args;
        int code;
    };
    const std::vector<Case> cases = {
        {{kBin, "status", "--policy", (dir / "none.yaml").string()}, 3},
        {{kBin, "bundle", "frobnicate"}, 2},
        {{kBin, "bundle", "info"}, 2},
        {{kBin, "bundle", "info", missing}, 6},
        {{kBin, "bundle", "verify", "--keys", dir.path().string(), missing}, 8},  // no keys
        {{kBin, "takeover-message", "frobnicate"}, 2},
    };
    const std::regex format(R"(activate\[activate\] error: .+)");
    for (const Case& c : cases) {
        std::string shown;
        for (const std::string& a : c.args) shown += a + " ";
        auto r = run(c.args);
        EXPECT_EQ(r.exit_code, c.code) << shown << r.err;
        EXPECT_EQ(r.out, "") << shown;
        std::istringstream lines(r.err);
        std::vector<std::string> errors;
        for (std::string line; std::getline(lines, line);)
            if (line.find("error") != std::string::npos) errors.push_back(line);
        ASSERT_EQ(errors.size(), 1u) << shown << r.err;
        EXPECT_TRUE(std::regex_match(errors[0], format)) << shown << errors[0];
    }
    // The takeover-message converter reads stdin: bytes that are not JSON are input (5).
    auto bad = run({kBin, "takeover-message", "encode"}, "{");
    EXPECT_EQ(bad.exit_code, 5) << bad.err;
    EXPECT_EQ(bad.out, "");
}

TEST(Cli, PolicyErrorExitsThreeNamingFileAndLine) {
    test::TempDir dir;
    // A mode the activation plugin does not declare (checked once the plugin is loaded).
    std::string p = policy_file(
        dir, "activation_mode: sideways\npayload: {plugin: fake}\nactivation: {plugin: fake}\n");
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find(p + ":1:18: activation_mode: activation plugin 'fake' declares no mode "
                             "'sideways'; it declares kexec (staged_kernel)"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(Cli, PluginLoadErrorExitsFour) {
    test::TempDir dir;
    std::string p = policy_file(dir,
                                "activation_mode: kexec\npayload: {plugin: othersdk}\n"
                                "activation: {plugin: fake}\n");
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run"});
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find(std::string(FAKE_PLUGIN_DIR) + "/othersdk.so was built against activate "
                                                        "SDK 0.0.9 (plugin ABI 999"),
              std::string::npos)
        << r.err;
}

// A plugin name is a name: one that is a path, in the file or from --set, is a policy error
// naming where it was given, found before any plugin is loaded (dlopen runs a library's
// constructors, which here would leave a marker file).
TEST(Cli, PluginNamesThatArePathsAreRefusedBeforeAnythingIsLoaded) {
    test::TempDir dir;
    const std::filesystem::path marker = dir / "loaded";
    ::setenv("ACTIVATE_TEST_MARKER", marker.c_str(), 1);
    const std::string evil = std::string(OUTSIDE_PLUGIN_DIR) + "/evil";
    std::string p = policy_file(dir,
                                "activation_mode: kexec\npayload: {plugin: fake}\n"
                                "activation:\n  plugin: " +
                                    evil + "\n");
    auto in_file = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--dry-run"});
    EXPECT_EQ(in_file.exit_code, 3) << in_file.err;
    EXPECT_NE(in_file.err.find(p + ":4:11: activation.plugin: '" + evil +
                               "' is not a plugin name (letters, digits, '_' and '-' only"),
              std::string::npos)
        << in_file.err;

    auto from_set =
        run({kBin, "--policy", policy_file(dir, kPolicy), "--plugin-dir", FAKE_PLUGIN_DIR,
             "--dry-run", "--set", "activation.plugin=../outside-plugins/evil"});
    EXPECT_EQ(from_set.exit_code, 3) << from_set.err;
    EXPECT_NE(from_set.err.find("--set activation.plugin=../outside-plugins/evil"),
              std::string::npos)
        << from_set.err;
    EXPECT_NE(from_set.err.find("'../outside-plugins/evil' is not a plugin name"),
              std::string::npos)
        << from_set.err;
    ::unsetenv("ACTIVATE_TEST_MARKER");
    EXPECT_FALSE(std::filesystem::exists(marker)) << "the library named by a path was loaded";
}

// $ACTIVATE_PLUGIN_PATH: colon-separated, empty entries and missing directories skipped.
TEST(Cli, PluginPathFromEnvironment) {
    test::TempDir dir;
    std::string p = policy_file(dir, kPolicy);
    ::setenv("ACTIVATE_PLUGIN_PATH", ("/nonexistent::" + std::string(FAKE_PLUGIN_DIR)).c_str(), 1);
    auto r = run({kBin, "--policy", p, "--dry-run"});
    ::unsetenv("ACTIVATE_PLUGIN_PATH");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(std::string(FAKE_PLUGIN_DIR) + "/fake.so"), std::string::npos) << r.out;
}

// Added directories come in front of the built-in one, which is still searched: a policy takes
// its payload from an added directory and its activation (kexec) from the engine's own.
TEST(Cli, AddedPluginDirectoriesKeepTheBuiltInOne) {
    test::TempDir dir;
    std::string p = policy_file(dir,
                                "activation_mode: kexec\npayload: {plugin: fake}\n"
                                "activation: {plugin: kexec}\n");
    for (bool from_env : {false, true}) {
        std::vector<std::string> args = {kBin, "--policy", p, "--dry-run"};
        if (from_env)
            ::setenv("ACTIVATE_PLUGIN_PATH", FAKE_PLUGIN_DIR, 1);
        else
            args.insert(args.end(), {"--plugin-dir", FAKE_PLUGIN_DIR});
        auto r = run(args);
        ::unsetenv("ACTIVATE_PLUGIN_PATH");
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find(std::string(FAKE_PLUGIN_DIR) + "/fake.so"), std::string::npos)
            << r.out;
        EXPECT_NE(r.out.find(BUILTIN_PLUGIN_DIR "/kexec.so"), std::string::npos) << r.out;
    }
}

// The same name in several places: the first directory wins, in the order --plugin-dir (as
// given), $ACTIVATE_PLUGIN_PATH (as listed), the built-in directory.
TEST(Cli, FirstPluginDirectoryWins) {
    test::TempDir dir, first, second;
    std::filesystem::copy_file(BUILTIN_PLUGIN_DIR "/kexec.so", first / "kexec.so");
    std::filesystem::copy_file(BUILTIN_PLUGIN_DIR "/kexec.so", second / "kexec.so");
    std::string p = policy_file(dir,
                                "activation_mode: kexec\npayload: {plugin: fake}\n"
                                "activation: {plugin: kexec}\n");
    auto plan_names = [&](const std::vector<std::string>& extra, const char* env) {
        std::vector<std::string> args = {kBin,        "--policy",     p,
                                         "--dry-run", "--plugin-dir", FAKE_PLUGIN_DIR};
        args.insert(args.end(), extra.begin(), extra.end());
        if (env) ::setenv("ACTIVATE_PLUGIN_PATH", env, 1);
        auto r = run(args);
        ::unsetenv("ACTIVATE_PLUGIN_PATH");
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r.out;
    };
    const std::string in_first = (first / "kexec.so").string();
    const std::string in_second = (second / "kexec.so").string();
    // An added directory over the built-in one.
    EXPECT_NE(plan_names({"--plugin-dir", first.path().string()}, nullptr).find(in_first),
              std::string::npos);
    // --plugin-dir over $ACTIVATE_PLUGIN_PATH.
    EXPECT_NE(
        plan_names({"--plugin-dir", second.path().string()}, first.path().c_str()).find(in_second),
        std::string::npos);
    // Within the variable, its order.
    const std::string both = first.path().string() + ":" + second.path().string();
    EXPECT_NE(plan_names({}, both.c_str()).find(in_first), std::string::npos);
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

    const std::string update =
        policy_file(dir,
                    "activation_mode: kexec\npayload: {plugin: fake_slots}\n"
                    "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    auto u = run({kBin, "--policy", update, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                  root.path().string(), "--bundle", "/b.zip"});
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

// Exit 6 and exit 1 as the binary returns them (README "Exit codes").
TEST(Cli, FailedActivationExitsSixAndABrokenPluginContractExitsOne) {
    test::TempDir dir, root;
    std::string p = policy_file(dir, kUpdatePolicy);
    auto failed =
        run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
             root.path().string(), "--bundle", "/b.zip", "--set", "payload.settings.fail=true"});
    EXPECT_EQ(failed.exit_code, 6) << failed.err;
    EXPECT_NE(failed.err.find("fake install failed"), std::string::npos) << failed.err;
    EXPECT_EQ(failed.out, "");
    EXPECT_FALSE(std::filesystem::exists(root / "run/activate/reboot"));

    // A payload that writes without calling before_writing() is a bug (ErrorKind::internal).
    auto internal = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                         root.path().string(), "--bundle", "/b.zip", "--set",
                         "payload.settings.skip_before_writing=true"});
    EXPECT_EQ(internal.exit_code, 1) << internal.err;
    EXPECT_NE(internal.err.find("installed without calling before_writing()"), std::string::npos)
        << internal.err;
    EXPECT_EQ(internal.out, "");
}

// stderr: `activate[<component>] <level>: <message>`, one line each; stdout: protocol output only.
TEST(Cli, LogLinesHaveComponentAndLevelAndRespectTheThreshold) {
    test::TempDir dir, root;
    std::string p = policy_file(dir, kUpdatePolicy);
    const std::regex line(R"(activate\[[A-Za-z0-9_.-]+\] (debug|info|warning|error): .+)");
    auto lines_of = [](const std::string& text) {
        std::vector<std::string> lines;
        std::istringstream in(text);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        return lines;
    };

    auto ok = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                   root.path().string(), "--bundle", "/b.zip"});
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.out, "");  // an update has no protocol output
    std::vector<std::string> lines = lines_of(ok.err);
    ASSERT_FALSE(lines.empty());
    for (const std::string& l : lines) EXPECT_TRUE(std::regex_match(l, line)) << l;
    EXPECT_NE(ok.err.find("activate[engine] info: running slot A, installing into slot B\n"),
              std::string::npos)
        << ok.err;

    auto quiet = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                      root.path().string(), "--bundle", "/b.zip", "--log-level", "error"});
    EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
    EXPECT_EQ(quiet.err, "");
    EXPECT_EQ(quiet.out, "");

    auto failing = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                        root.path().string(), "--bundle", "/b.zip", "--log-level", "error", "--set",
                        "payload.settings.fail=true"});
    EXPECT_EQ(failing.exit_code, 6);
    lines = lines_of(failing.err);
    ASSERT_EQ(lines.size(), 1u) << failing.err;
    EXPECT_TRUE(std::regex_match(lines[0], line)) << lines[0];
    EXPECT_EQ(lines[0].rfind("activate[activate] error: ", 0), 0u) << lines[0];
    EXPECT_EQ(failing.out, "");

    // The dry-run plan is protocol output: stdout, with the logs still on stderr only.
    auto plan = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                     root.path().string(), "--dry-run"});
    EXPECT_EQ(plan.exit_code, 0) << plan.err;
    EXPECT_EQ(plan.out.rfind("policy: " + p + "\n", 0), 0u) << plan.out;
    EXPECT_EQ(plan.out.find("activate["), std::string::npos) << plan.out;
}

// On the live system a relative --bundle is relative to the current directory; under a sysroot
// it must be absolute (a path inside the sysroot), and the error says so.
TEST(Cli, RelativeBundleIsResolvedOnlyWithoutASysroot) {
    test::TempDir dir, root;
    std::string p = policy_file(dir, kUpdatePolicy);
    auto refused = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                        root.path().string(), "--bundle", "./b.zip"});
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find("--bundle ./b.zip: under --sysroot " + root.path().string() +
                               " the bundle must be an absolute path inside the sysroot"),
              std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(root / "slot-B"));

    // Without a sysroot (the live system, which a test must not act on): checked on the function
    // the CLI calls.
    Sysroot live("/");
    EXPECT_EQ(*resolve_bundle_argument("./b.zip", live, "/home/op"), "/home/op/b.zip");
    EXPECT_EQ(*resolve_bundle_argument("../x/b.zip", live, "/home/op"), "/home/x/b.zip");
    EXPECT_EQ(*resolve_bundle_argument("/srv/b.zip", live, "/home/op"), "/srv/b.zip");
    EXPECT_EQ(*resolve_bundle_argument("https://h/b.zip", live, "/home/op"), "https://h/b.zip");
    Sysroot under(root.path());
    EXPECT_EQ(*resolve_bundle_argument("/b.zip", under, "/home/op"), "/b.zip");
    Result<std::string> bad = resolve_bundle_argument("b.zip", under, "/home/op");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().kind(), ErrorKind::usage);
    EXPECT_NE(bad.error().message().find("(e.g. /b.zip for " + (root / "b.zip").string() + ")"),
              std::string::npos)
        << bad.error().message();
}

TEST(Cli, StatusPrintsJsonOrIndentedText) {
    test::TempDir dir, root;
    test::write_file(dir / "u.yaml",
                     "activation_mode: kexec\npayload:\n  plugin: fake_slots\n"
                     "activation: {plugin: fake}\n"
                     "boot_control: {plugin: fake}\n");
    auto json = test::run({ACTIVATE_BINARY, "status", "--json", "--policy",
                           (dir / "u.yaml").string(), "--plugin-dir", FAKE_PLUGIN_DIR,
                           "--sysroot", root.path().string()});
    EXPECT_EQ(json.exit_code, 0) << json.err;
    EXPECT_EQ(json.out,
              "{\"running_slot\":\"A\",\"target_slot\":\"B\",\"kexec_loaded\":false,"
              "\"boot_current\":null,\"slots\":{\"A\":{\"state\":\"unknown\",\"version\":null},"
              "\"B\":{\"state\":\"unknown\",\"version\":null}},\"last_activation\":null,"
              "\"boot\":{}}\n");
    auto text = test::run({ACTIVATE_BINARY, "status", "--policy", (dir / "u.yaml").string(),
                           "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", root.path().string()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("\n  \"running_slot\": \"A\",\n"), std::string::npos) << text.out;
}

// `assess` and `run --force` as users run them; kill -9 between recording a verdict and acting
// on it, and the next assess finishing the job.
class CliAssess : public ::testing::Test {
  protected:
    void SetUp() override {
        policy_ = policy_file(dir_, std::string(kUpdatePolicy) +
                                        "assessment:\n  checks:\n"
                                        "    - {name: probe, command: [sh, -c, 'exit $PROBE']}\n");
        test::write_file(root_ / "proc/sys/kernel/random/boot_id", "boot-1\n");
    }
    std::vector<std::string> args(const std::string& command,
                                  const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> a = {
            kBin,           command,         "--policy",  policy_,
            "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", root_.path().string()};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    // Installs into B and "jumps", then boots B.
    void update_and_boot_b() {
        auto r = run(args("run", {"--bundle", "/b.zip"}));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        test::write_file(root_ / "fake-running-slot", "B");
        test::write_file(root_ / "proc/sys/kernel/random/boot_id", "boot-2\n");
    }
    // Starts `activate assess` with `extra` arguments, waits until something it runs writes
    // /fake-hanging, and kills it -9 there.
    void assess_killed_when_hanging(const std::vector<std::string>& extra) {
        const std::vector<std::string> a = args("assess", extra);
        const pid_t pid = ::fork();
        if (pid == 0) {
            std::vector<char*> argv;
            for (const std::string& s : a) argv.push_back(const_cast<char*>(s.c_str()));
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        for (int i = 0; i < 400 && test::read_file(root_ / "fake-hanging").empty(); ++i)
            ::usleep(25000);
        ASSERT_FALSE(test::read_file(root_ / "fake-hanging").empty());
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFSIGNALED(status));
    }
    // The boot control hangs in `call` (fake plugin setting hang_in).
    void assess_killed_in(const std::string& call) {
        assess_killed_when_hanging({"--set", "boot_control.settings.hang_in=" + call});
        std::filesystem::remove(root_ / "fake-hanging");
    }
    std::string record() const {
        return test::read_file(root_ / "esp/EFI/activate/activation.json");
    }

    test::TempDir dir_, root_;
    std::string policy_;
};

TEST_F(CliAssess, NothingOnTrialExitsZero) {
    auto r = run(args("assess"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("no activation on trial"), std::string::npos) << r.err;
}

TEST_F(CliAssess, AGoodSlotExitsZeroAFailedOneSixAfterRecordingTheReboot) {
    update_and_boot_b();
    ::setenv("PROBE", "1", 1);
    auto failed = run(args("assess"));
    ::unsetenv("PROBE");
    EXPECT_EQ(failed.exit_code, 6) << failed.err;
    EXPECT_EQ(failed.out, "");
    EXPECT_NE(failed.err.find("error: slot B failed its assessment (check \"probe\" exited with "
                              "status 1); rebooting into slot A"),
              std::string::npos)
        << failed.err;
    EXPECT_EQ(test::read_file(root_ / "run/activate/reboot"), "kexec\nreboot\n");

    test::write_file(root_ / "fake-running-slot", "A");
    test::write_file(root_ / "proc/sys/kernel/random/boot_id", "boot-3\n");
    auto back = run(args("assess"));
    EXPECT_EQ(back.exit_code, 0) << back.err;
    EXPECT_NE(back.err.find("back on slot A after slot B failed its assessment"), std::string::npos)
        << back.err;
}

TEST_F(CliAssess, InstallOnTrialExitsEightAndForceIsOnlyForRun) {
    update_and_boot_b();
    auto refused = run(args("run", {"--bundle", "/b.zip"}));
    EXPECT_EQ(refused.exit_code, 8) << refused.err;
    EXPECT_NE(refused.err.find("or pass --force to install anyway"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-A"));
    auto forced = run(args("run", {"--bundle", "/b.zip", "--force"}));
    EXPECT_EQ(forced.exit_code, 0) << forced.err;
    EXPECT_TRUE(std::filesystem::exists(root_ / "slot-A"));
    auto misplaced = run(args("assess", {"--force"}));
    EXPECT_EQ(misplaced.exit_code, 2);
    EXPECT_NE(misplaced.err.find("--force belongs to 'run'"), std::string::npos) << misplaced.err;
}

TEST_F(CliAssess, KilledAfterTheGoodVerdictBeforeMarkGoodTheNextAssessFinishes) {
    update_and_boot_b();
    ::setenv("PROBE", "0", 1);
    assess_killed_in("mark_good");
    EXPECT_NE(record().find("\"pending\": \"mark-good\""), std::string::npos) << record();
    EXPECT_EQ(test::read_file(root_ / "boot-log"), "begin B\nfinish B\n");
    auto again = run(args("assess"));
    ::unsetenv("PROBE");
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(test::read_file(root_ / "boot-log"), "begin B\nfinish B\ngood B\n");
    EXPECT_EQ(record().find("pending"), std::string::npos) << record();
    EXPECT_NE(record().find("\"state\": \"good\""), std::string::npos);
}

TEST_F(CliAssess, KilledAfterTheFailureBeforeBootNextTheNextAssessFallsBack) {
    update_and_boot_b();
    ::setenv("PROBE", "1", 1);
    assess_killed_in("boot_next");
    ::unsetenv("PROBE");
    EXPECT_NE(record().find("\"pending\": \"fallback\""), std::string::npos) << record();
    EXPECT_EQ(test::read_file(root_ / "run/activate/reboot"), "kexec\n");  // no reboot yet
    // Same boot: the fallback is finished without running the checks again (PROBE unset now
    // would pass).
    auto again = run(args("assess"));
    EXPECT_EQ(again.exit_code, 6) << again.err;
    EXPECT_EQ(test::read_file(root_ / "boot-log"), "begin B\nfinish B\nnext A\n");
    EXPECT_EQ(test::read_file(root_ / "run/activate/reboot"), "kexec\nreboot\n");
}

TEST_F(CliAssess, KilledDuringACheckTheTrialStaysOpenAndTheCheckDiesToo) {
    update_and_boot_b();
    const std::string before = record();
    const std::string marker = (root_ / "fake-hanging").string();
    assess_killed_when_hanging(
        {"--set", "assessment.checks=[{name: slow, command: [sh, -c, 'echo $$ > " + marker +
                      "; sleep 60']}]"});
    const pid_t check = std::stoi(test::read_file(marker));
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
        gone = ::kill(check, 0) != 0 ||
               test::read_file("/proc/" + std::to_string(check) + "/stat").find(") Z ") !=
                   std::string::npos;
        if (!gone) ::usleep(10000);
    }
    EXPECT_TRUE(gone) << "the check (pid " << check << ") outlived the killed assess";
    EXPECT_EQ(record(), before);  // still trying: nothing was decided
    ::setenv("PROBE", "0", 1);
    auto again = run(args("assess"));
    ::unsetenv("PROBE");
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(test::read_file(root_ / "boot-log"), "begin B\nfinish B\ngood B\n");
}

TEST(Cli, StatusTextIsTheJsonIndentedWithEmptyCollectionsKept) {
    test::TempDir dir, root;
    const std::string p = policy_file(dir, kUpdatePolicy);
    auto text = run({kBin, "status", "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot",
                     root.path().string()});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("\n  \"boot\": {}\n}"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("\n  \"last_activation\": null,\n"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace activate

namespace activate {
namespace {

// Every verb that reads a policy reports a missing, a malformed and a directory policy the same
// way: exit 3, one error line naming the file, nothing on stdout. `serve` used to exit 3 printing
// nothing, and a directory aborted every verb with an uncaught std::ios_failure (exit 134).
TEST(Cli, EveryVerbReportsABadPolicyOnce) {
    test::TempDir dir, root;
    const std::string malformed = policy_file(dir, "activation_mode: [kexec\n");
    const std::string missing = (dir / "missing.yaml").string();
    test::write_file(dir / "policies/x.yaml", kPolicy);
    const std::string directory = (dir / "policies").string();
    const std::pair<std::string, std::string> policies[] = {
        {missing, ": cannot read the policy file: No such file or directory"},
        {malformed, ":2:1: "},
        {directory, ": cannot read the policy file: it is a directory"},
    };
    const std::vector<std::vector<std::string>> verbs = {
        {"run"},
        {"run", "--dry-run"},
        {"status"},
        {"mark-good"},
        {"serve", "--socket", (dir / "s.sock").string()}};
    for (const auto& verb : verbs) {
        for (const auto& [policy, detail] : policies) {
            std::vector<std::string> args = {kBin};
            args.insert(args.end(), verb.begin(), verb.end());
            args.insert(args.end(), {"--policy", policy, "--plugin-dir", FAKE_PLUGIN_DIR,
                                     "--sysroot", root.path().string()});
            auto r = run(args);
            const std::string what = verb.front() + " --policy " + policy;
            EXPECT_EQ(r.exit_code, 3) << what << ": " << r.err;
            EXPECT_EQ(r.out, "") << what;
            const std::vector<std::string> lines = lines_of(r.err);
            ASSERT_EQ(lines.size(), 1u) << what << ": " << r.err;
            EXPECT_EQ(lines[0].rfind("activate[activate] error: " + policy + detail, 0), 0u)
                << what << ": " << lines[0];
        }
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "s.sock"));
}

// A --sysroot that cannot even be examined (a name too long for the kernel) is a usage error
// saying why; std::filesystem::is_directory threw out of the CLI there, an abort (exit 134).
TEST(Cli, SysrootThatCannotBeExaminedIsAUsageError) {
    test::TempDir dir;
    const std::string p = policy_file(dir, kPolicy);
    const std::string long_name = "/" + std::string(5000, 'x');
    auto r = run({kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", long_name,
                  "--dry-run"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("is not a directory (File name too long)"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

// Relative paths of `bundle info` and `bundle verify --keys` when the current directory was
// removed: a usage error saying so; the throwing std::filesystem::absolute aborted (exit 134).
TEST(Cli, BundleToolsInARemovedDirectoryAreUsageErrors) {
    test::TempDir dir;
    const std::string gone = (dir / "gone").string();
    for (const std::string& args :
         {std::string("bundle info b.zip"), std::string("bundle verify --keys keys b.zip")}) {
        auto r = run({"/bin/sh", "-c",
                      "mkdir " + gone + " && cd " + gone + " && rmdir " + gone + " && exec " +
                          kBin + " " + args});
        EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
        const std::vector<std::string> lines = lines_of(r.err);
        ASSERT_EQ(lines.size(), 1u) << args << ": " << r.err;
        EXPECT_EQ(lines[0].rfind("activate[activate] error: ", 0), 0u) << lines[0];
        EXPECT_NE(lines[0].find(": the current directory is unknown ("), std::string::npos)
            << lines[0];
        EXPECT_EQ(r.out, "");
    }
}

// libprotobuf's own diagnostics (here: a string field that is not UTF-8, which proto3 refuses)
// come out in the log format as component "protobuf", beside the one error of the run.
TEST(Cli, ProtobufDiagnosticsUseTheLogFormat) {
    test::TempDir dir, root;
    const std::string p = policy_file(dir, kPolicy);
    // TakeoverInit{machine_id (1) = "\xff\xfe", bmaas_endpoint (2) = "e:1"}, encoded by hand so
    // that this process does not log the same complaint while serializing.
    const std::string input = std::string("\x0a\x02\xff\xfe\x12\x03", 6) + "e:1";
    auto r = run(
        {kBin, "--policy", p, "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", root.path().string()},
        input);
    EXPECT_EQ(r.exit_code, 5) << r.err;
    const std::regex format(R"(activate\[[A-Za-z0-9_.-]+\] (debug|info|warning|error): .+)");
    const std::vector<std::string> lines = lines_of(r.err);
    ASSERT_FALSE(lines.empty());
    for (const std::string& l : lines) EXPECT_TRUE(std::regex_match(l, format)) << l;
    EXPECT_NE(r.err.find("activate[protobuf] warning: String field "
                         "'activate.wire.TakeoverInit.machine_id' contains invalid UTF-8"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("activate[activate] error: stdin is not a valid TakeoverInit"),
              std::string::npos)
        << r.err;
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(r.out));
    EXPECT_TRUE(response.has_error());
}

// A child running `argv` with stdin on a pipe the test holds open; stderr goes to `err_file`.
struct OpenStdinChild {
    pid_t pid = -1;
    int stdin_fd = -1;

    OpenStdinChild(const std::vector<std::string>& argv, const std::filesystem::path& err_file) {
        int in[2];
        if (::pipe2(in, O_CLOEXEC) != 0) return;
        pid = ::fork();
        if (pid == 0) {
            ::dup2(in[0], 0);
            const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(err, 2);
            const int out = ::open("/dev/null", O_WRONLY);
            ::dup2(out, 1);
            std::vector<char*> args;
            for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(in[0]);
        stdin_fd = in[1];
    }
    // Closes stdin and returns the exit code.
    int finish() {
        if (stdin_fd >= 0) ::close(stdin_fd);
        stdin_fd = -1;
        int status = 0;
        ::waitpid(pid, &status, 0);
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    ~OpenStdinChild() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            finish();
        }
    }
};

bool wait_for_text(const std::filesystem::path& file, const std::string& text,
                   std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (test::read_file(file).find(text) != std::string::npos) return true;
        ::usleep(20000);
    }
    return false;
}

// A takeover client that keeps stdin open does not hold the activation lock: mark-good on the
// same machine succeeds meanwhile (issue 12 §3: the lock used to be taken before stdin was read).
TEST(Cli, TakeoverWaitingForStdinDoesNotHoldTheLock) {
    test::TempDir dir, root;
    const std::string takeover = policy_file(dir, kPolicy);
    test::write_file(dir / "update.yaml",
                     "activation_mode: kexec\n"
                     "payload: {plugin: fake_slots}\n"
                     "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    OpenStdinChild waiting({kBin, "--policy", takeover, "--plugin-dir", FAKE_PLUGIN_DIR,
                            "--sysroot", root.path().string(), "--log-level", "debug"},
                           dir / "takeover.err");
    ASSERT_GT(waiting.pid, 0);
    ASSERT_TRUE(wait_for_text(dir / "takeover.err", "waiting for the TakeoverInit on stdin",
                              std::chrono::seconds(20)))
        << test::read_file(dir / "takeover.err");
    auto good = run({kBin, "mark-good", "--policy", (dir / "update.yaml").string(), "--plugin-dir",
                     FAKE_PLUGIN_DIR, "--sysroot", root.path().string()});
    EXPECT_EQ(good.exit_code, 0) << good.err;
    EXPECT_NE(good.err.find("marked good"), std::string::npos) << good.err;
    // The client then gives up without a message: an input error, nothing staged.
    EXPECT_EQ(waiting.finish(), 5) << test::read_file(dir / "takeover.err");
    EXPECT_FALSE(std::filesystem::exists(root / "run/activate/kexec/kernel"));
}

// A client that sends nothing and never closes stdin: the takeover ends at input_timeout with an
// error naming it, answered on stdout, instead of waiting forever.
TEST(Cli, SilentTakeoverClientEndsAtTheInputTimeout) {
    test::TempDir dir, root;
    const std::string takeover = policy_file(dir, kPolicy);
    int in[2];
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(in[0], 0);
        const int out = ::open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int err = ::open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(out, 1);
        ::dup2(err, 2);
        ::execl(kBin.c_str(), kBin.c_str(), "--policy", takeover.c_str(), "--plugin-dir",
                FAKE_PLUGIN_DIR, "--sysroot", root.path().c_str(), "--set", "input_timeout=300ms",
                nullptr);
        ::_exit(127);
    }
    ::close(in[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);  // stdin (in[1]) stays open all along
    const auto took = std::chrono::steady_clock::now() - start;
    ::close(in[1]);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 5);
    EXPECT_GE(took, std::chrono::milliseconds(300));
    EXPECT_LT(took, std::chrono::seconds(20));
    const std::string err = test::read_file(dir / "err");
    EXPECT_NE(err.find("no complete TakeoverInit on stdin within 300 ms (policy input_timeout"),
              std::string::npos)
        << err;
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(test::read_file(dir / "out")));
    ASSERT_TRUE(response.has_error());
    EXPECT_NE(response.error().message().find("input_timeout"), std::string::npos);
}

}  // namespace
}  // namespace activate
