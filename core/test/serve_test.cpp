// `activate serve` and `activate request` as separate processes over a real UNIX socket.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <activate/serve.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "test_support.hpp"

namespace activate {
namespace {

const std::string kBin = ACTIVATE_BINARY;

// Starts `activate serve` with `args` after it, stderr to `log`, under `mask` as its umask.
pid_t start_server(const std::vector<std::string>& args, const std::filesystem::path& log,
                   mode_t mask = 022) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::freopen(log.c_str(), "w", stderr);
        ::umask(mask);
        std::vector<char*> argv{const_cast<char*>(kBin.c_str()), const_cast<char*>("serve")};
        for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(kBin.c_str(), argv.data());
        ::_exit(127);
    }
    return pid;
}

bool wait_for(const std::filesystem::path& p) {
    for (int i = 0; i < 200 && !std::filesystem::exists(p); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return std::filesystem::exists(p);
}

mode_t mode_of(const std::filesystem::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? st.st_mode : 0;
}

// Runs body() in a forked child as uid and gid 65534 (nobody) and returns the string it returns.
template <class Body>
std::string as_nobody(Body body) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return "pipe failed";
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(pipe_fds[0]);
        std::string out = "could not become uid 65534";
        if (::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
            ::setresuid(65534, 65534, 65534) == 0)
            out = body();
        (void)!::write(pipe_fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    ::close(pipe_fds[0]);
    ::waitpid(child, nullptr, 0);
    return out;
}

// One request from nobody: "reply <code>: <message>" or "error: <message>".
std::string request_as_nobody(const std::string& socket) {
    return as_nobody([&] {
        wire::UpdateNodeRequest request;
        request.set_bundle_url("/local.zip");
        request.set_activation_mode(wire::ACTIVATION_KEXEC);
        Result<ServeReply> reply = send_update_request(socket, request);
        return reply.ok() ? "reply " + std::to_string(int(reply->code)) + ": " + reply->message
                          : "error: " + reply.error().message();
    });
}

long rss_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

class ServeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        test::write_file(dir_ / "kexec.yaml",
                         "activation_mode: kexec\npayload:\n  plugin: fake_slots\n  settings: "
                         "{install_delay: 1500ms, absolute_bundles: true}\n"
                         "activation: {plugin: fake}\n"
                         "boot_control: {plugin: fake}\n");
        // A mode only its plugin knows: no enum value names it.
        test::write_file(dir_ / "soft.yaml",
                         "activation_mode: soft-reboot\npayload:\n  plugin: fake_slots\n  settings: "
                         "{absolute_bundles: true}\n"
                         "activation: {plugin: fake, settings: {declares_mode: soft-reboot}}\n"
                         "boot_control: {plugin: fake}\n");
        socket_ = (dir_ / "s.sock").string();
        server_ = start_server({"--policy", (dir_ / "kexec.yaml").string(), "--policy",
                                (dir_ / "soft.yaml").string(), "--plugin-dir", FAKE_PLUGIN_DIR,
                                "--sysroot", root_.path().string(), "--socket", socket_},
                               dir_ / "serve.log");
        ASSERT_TRUE(wait_for(socket_)) << test::read_file(dir_ / "serve.log");
    }
    void TearDown() override {
        ::kill(server_, SIGTERM);
        ::waitpid(server_, nullptr, 0);
    }
    ServeReply send(const std::string& bundle, wire::ActivationMode mode,
                    const std::string& mode_name = "") {
        wire::UpdateNodeRequest request;
        request.set_bundle_url(bundle);
        request.set_activation_mode(mode);
        request.set_activation_mode_name(mode_name);
        Result<ServeReply> reply = send_update_request(socket_, request);
        EXPECT_TRUE(reply.ok()) << reply.error().message();
        return reply.ok() ? *reply : ServeReply{};
    }

    test::TempDir dir_, root_;
    std::string socket_;
    pid_t server_ = -1;
};

TEST_F(ServeTest, RunsTheUpdateAndRefusesASecondWhileItRuns) {
    ServeReply first;
    std::thread client([&] { first = send("http://bundle/one.zip", wire::ACTIVATION_KEXEC); });
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ServeReply second = send("http://bundle/two.zip", wire::ACTIVATION_KEXEC);
    EXPECT_EQ(second.code, ServeCode::busy);
    EXPECT_NE(second.message.find("in progress"), std::string::npos);
    client.join();
    EXPECT_EQ(first.code, ServeCode::ok) << first.message;
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from http://bundle/one.zip");
    for (int i = 0; i < 200 && !std::filesystem::exists(root_ / "run/activate/reboot"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    EXPECT_EQ(test::read_file(root_ / "run/activate/reboot"), "kexec\n");
}

TEST_F(ServeTest, InvalidModeAndMissingPolicyAreRefused) {
    ServeReply invalid = send("b.zip", wire::ACTIVATION_INVALID);
    EXPECT_EQ(invalid.code, ServeCode::invalid_argument);
    EXPECT_NE(invalid.message.find("ACTIVATION_INVALID"), std::string::npos);
    ServeReply reboot = send("b.zip", wire::ACTIVATION_REBOOT);
    EXPECT_EQ(reboot.code, ServeCode::unavailable);
    EXPECT_NE(reboot.message.find("no policy for activation mode reboot"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// A request the policy cannot carry out as asked is the client's mistake (invalid_argument, exit
// 2); `unavailable` stays reserved for a mode no policy was given for.
TEST_F(ServeTest, RelativeBundleUrlIsAnInvalidArgument) {
    ServeReply r = send("b.zip", wire::ACTIVATION_KEXEC);
    EXPECT_EQ(r.code, ServeCode::invalid_argument) << r.message;
    EXPECT_NE(r.message.find("\"b.zip\" is neither an absolute path nor a URL"), std::string::npos)
        << r.message;
    auto cli =
        test::run({kBin, "request", "--socket", socket_, "--bundle", "b.zip", "--mode", "kexec"});
    EXPECT_EQ(cli.exit_code, 2) << cli.err;
    EXPECT_NE(cli.err.find("invalid request: "), std::string::npos) << cli.err;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

TEST_F(ServeTest, FailedUpdateIsAnsweredFailed) {
    ServeReply r = send("/failing.zip", wire::ACTIVATION_KEXEC);
    EXPECT_EQ(r.code, ServeCode::failed) << r.message;
    EXPECT_NE(r.message.find("fake install failed"), std::string::npos) << r.message;
    auto cli = test::run(
        {kBin, "request", "--socket", socket_, "--bundle", "/failing.zip", "--mode", "kexec"});
    EXPECT_EQ(cli.exit_code, 6) << cli.err;
    EXPECT_NE(cli.err.find("update failed: "), std::string::npos) << cli.err;
    EXPECT_FALSE(std::filesystem::exists(root_ / "run/activate/reboot"));
}

TEST_F(ServeTest, UnknownActivationModeIsRefused) {
    // A mode a newer client knows and this server does not: proto3 keeps the number.
    ServeReply r = send("b.zip", static_cast<wire::ActivationMode>(7));
    EXPECT_EQ(r.code, ServeCode::invalid_argument);
    EXPECT_NE(r.message.find("activation_mode 7 is unknown"), std::string::npos) << r.message;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// A mode an activation plugin declares (no enum value has it) is requested by its name: the
// server runs it with the policy of that name, and the trial records it.
TEST_F(ServeTest, ADeclaredModeIsRequestedByName) {
    ServeReply r = send("/local.zip", wire::ACTIVATION_INVALID, "soft-reboot");
    EXPECT_EQ(r.code, ServeCode::ok) << r.message << test::read_file(dir_ / "serve.log");
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from /local.zip");
    EXPECT_NE(test::read_file(root_ / "esp/EFI/activate/activation.json")
                  .find("\"mode\": \"soft-reboot\""),
              std::string::npos)
        << test::read_file(root_ / "esp/EFI/activate/activation.json");
    EXPECT_NE(
        test::read_file(dir_ / "serve.log").find("update requested: /local.zip (soft-reboot)"),
        std::string::npos)
        << test::read_file(dir_ / "serve.log");
    // The fake jumps by reboot in every mode without a staged kernel.
    for (int i = 0; i < 200 && !std::filesystem::exists(root_ / "run/activate/reboot"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    EXPECT_EQ(test::read_file(root_ / "run/activate/reboot"), "reboot\n");
}

// A mode the enum has may be named too, the enum left ACTIVATION_INVALID.
TEST_F(ServeTest, AModeNameNeedsNoEnum) {
    ServeReply r = send("/local.zip", wire::ACTIVATION_INVALID, "kexec");
    EXPECT_EQ(r.code, ServeCode::ok) << r.message;
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from /local.zip");
}

// A name and an enum value naming different modes is a contradiction, not a choice: refused
// before anything runs, both named. The same mode twice is fine (what `request` sends).
TEST_F(ServeTest, ANameAndAnEnumThatDisagreeAreRefused) {
    ServeReply r = send("/local.zip", wire::ACTIVATION_REBOOT, "soft-reboot");
    EXPECT_EQ(r.code, ServeCode::invalid_argument) << r.message;
    EXPECT_EQ(r.message,
              "activation_mode_name \"soft-reboot\" and activation_mode ACTIVATION_REBOOT name "
              "different modes: set the name alone, or both to the same mode");
    ServeReply none = send("/local.zip", wire::ACTIVATION_NONE, "kexec");
    EXPECT_EQ(none.code, ServeCode::invalid_argument) << none.message;
    EXPECT_NE(none.message.find("\"kexec\" and activation_mode ACTIVATION_NONE"), std::string::npos)
        << none.message;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
    ServeReply agree = send("/local.zip", wire::ACTIVATION_KEXEC, "kexec");
    EXPECT_EQ(agree.code, ServeCode::ok) << agree.message;
}

// The bundle comes from the client too: a control byte in it is refused before any engine runs,
// so that no message quoting the bundle (the engine's, a plugin's) carries it into a reply or
// the server's log.
TEST_F(ServeTest, ABundleUrlWithAControlByteIsRefusedEscaped) {
    ServeReply r = send("/local.zip\n\x1b[2Jfake", wire::ACTIVATION_KEXEC);
    EXPECT_EQ(r.code, ServeCode::invalid_argument) << r.message;
    EXPECT_EQ(r.message,
              "bundle_url \"/local.zip\\x0a\\x1b[2Jfake\" contains a control byte (\\x0a); send "
              "a path or an http(s) URL");
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// A name no served policy has is `unavailable`; the reply lists what is served (each policy's
// mode, and none, which the first policy serves when no policy has it).
TEST_F(ServeTest, AnUnknownModeNameIsUnavailableAndTheServedModesAreListed) {
    ServeReply r = send("/local.zip", wire::ACTIVATION_INVALID, "warp");
    EXPECT_EQ(r.code, ServeCode::unavailable) << r.message;
    EXPECT_EQ(r.message,
              "no policy for activation mode warp was given to serve; it serves kexec, "
              "soft-reboot, none");
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// A name comes from an untrusted client: bounded, no control bytes, and never echoed raw into a
// reply or the log (a terminal escape or a newline there could fake a line).
TEST_F(ServeTest, MalformedModeNamesAreRefusedAndShownEscaped) {
    const std::string longest(kMaxModeNameBytes, 'm');
    EXPECT_EQ(send("/local.zip", wire::ACTIVATION_INVALID, longest).code, ServeCode::unavailable);
    ServeReply oversized = send("/local.zip", wire::ACTIVATION_INVALID, longest + "m");
    EXPECT_EQ(oversized.code, ServeCode::invalid_argument) << oversized.message;
    EXPECT_NE(oversized.message.find("is 65 bytes long; a mode name has at most 64"),
              std::string::npos)
        << oversized.message;
    EXPECT_EQ(oversized.message.find(longest + "m"), std::string::npos) << oversized.message;

    ServeReply control = send("/local.zip", wire::ACTIVATION_INVALID, "kexec\n\x1b[2Jfake");
    EXPECT_EQ(control.code, ServeCode::invalid_argument) << control.message;
    EXPECT_EQ(control.message,
              "activation_mode_name \"kexec\\x0a\\x1b[2Jfake\" contains a control byte (\\x0a); "
              "name a mode a served policy has");
    // Not a control byte, but not ASCII either: unavailable, and escaped.
    ServeReply utf8 = send("/local.zip", wire::ACTIVATION_INVALID, "k\xc3\xa9xec");
    EXPECT_EQ(utf8.code, ServeCode::unavailable) << utf8.message;
    EXPECT_NE(utf8.message.find("activation mode k\\xc3\\xa9xec was given"), std::string::npos)
        << utf8.message;
    // Not UTF-8: proto3 refuses the whole message (a string field must be UTF-8).
    ServeReply binary = send("/local.zip", wire::ACTIVATION_INVALID, "kexec\xff");
    EXPECT_EQ(binary.code, ServeCode::invalid_argument) << binary.message;
    EXPECT_EQ(binary.message, "the frame is not an UpdateNodeRequest");
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
    const std::string log = test::read_file(dir_ / "serve.log");
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << log;
    EXPECT_EQ(log.find('\xff'), std::string::npos) << log;
}

wire::UpdateNodeRequest mode_request(int mode, const std::string& name) {
    wire::UpdateNodeRequest request;
    request.set_activation_mode(static_cast<wire::ActivationMode>(mode));
    request.set_activation_mode_name(name);
    return request;
}

std::string requested(int mode, const std::string& name) {
    Result<std::string> r = requested_mode(mode_request(mode, name));
    return r.ok() ? *r : "error: " + r.error().message();
}

// The enum alone reads as it always did; a name decides, whatever enum value a newer client
// sets beside it, as long as none of the three this server knows contradicts it.
TEST(RequestedMode, TheNameDecidesAndTheEnumAloneStillWorks) {
    EXPECT_EQ(requested(wire::ACTIVATION_NONE, ""), "none");
    EXPECT_EQ(requested(wire::ACTIVATION_REBOOT, ""), "reboot");
    EXPECT_EQ(requested(wire::ACTIVATION_KEXEC, ""), "kexec");
    EXPECT_EQ(requested(wire::ACTIVATION_INVALID, "soft-reboot"), "soft-reboot");
    EXPECT_EQ(requested(wire::ACTIVATION_REBOOT, "reboot"), "reboot");
    EXPECT_EQ(requested(7, "soft-reboot"), "soft-reboot");
    EXPECT_EQ(requested(wire::ACTIVATION_INVALID, ""),
              "error: activation_mode is ACTIVATION_INVALID and activation_mode_name is empty: "
              "set NONE, REBOOT or KEXEC, or the mode's name");
    EXPECT_EQ(requested(wire::ACTIVATION_KEXEC, "reboot"),
              "error: activation_mode_name \"reboot\" and activation_mode ACTIVATION_KEXEC name "
              "different modes: set the name alone, or both to the same mode");
    EXPECT_EQ(requested(wire::ACTIVATION_INVALID, "back\\slash\x7f"),
              "error: activation_mode_name \"back\\x5cslash\\x7f\" contains a control byte "
              "(\\x7f); name a mode a served policy has");
}

// `activate request --mode NAME` sends the name (and the enum where it has the mode), whatever
// the name: which modes exist is the server's to say. Only what cannot be a name is refused
// before connecting.
TEST_F(ServeTest, RequestSendsTheModeNameForTheServerToJudge) {
    for (const std::string bad : {"soft reboot", "soft\treboot"}) {
        auto cli = test::run(
            {kBin, "request", "--socket", socket_, "--bundle", "/local.zip", "--mode", bad});
        EXPECT_EQ(cli.exit_code, 2) << cli.err;
        EXPECT_NE(cli.err.find("a mode name has no whitespace or control characters"),
                  std::string::npos)
            << cli.err;
    }
    auto unknown = test::run(
        {kBin, "request", "--socket", socket_, "--bundle", "/local.zip", "--mode", "warp"});
    EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
    EXPECT_NE(unknown.err.find("invalid request: no policy for activation mode warp was given to "
                               "serve; it serves kexec, soft-reboot, none"),
              std::string::npos)
        << unknown.err;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));

    auto r = test::run(
        {kBin, "request", "--socket", socket_, "--bundle", "/local.zip", "--mode", "soft-reboot"});
    EXPECT_EQ(r.exit_code, 0) << r.err << test::read_file(dir_ / "serve.log");
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from /local.zip");
    EXPECT_NE(test::read_file(root_ / "esp/EFI/activate/activation.json")
                  .find("\"mode\": \"soft-reboot\""),
              std::string::npos)
        << test::read_file(root_ / "esp/EFI/activate/activation.json");
}

// A client that connects and sends nothing does not hold up the next one.
TEST_F(ServeTest, SilentClientDoesNotBlockOthers) {
    int silent = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    auto answered =
        std::async(std::launch::async, [&] { return send("b.zip", wire::ACTIVATION_REBOOT); });
    ASSERT_EQ(answered.wait_for(std::chrono::seconds(3)), std::future_status::ready)
        << "the server waited on the silent connection";
    EXPECT_EQ(answered.get().code, ServeCode::unavailable);
    ::close(silent);
}

TEST_F(ServeTest, RejectedBundleIsItsOwnReplyAndExitCode) {
    auto r = test::run(
        {kBin, "request", "--socket", socket_, "--bundle", "/rejected.zip", "--mode", "kexec"});
    EXPECT_EQ(r.exit_code, 8) << r.err;
    EXPECT_NE(r.err.find("bundle refused: "), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

TEST_F(ServeTest, ModeNoneInstallsWithoutJumping) {
    auto r = test::run(
        {kBin, "request", "--socket", socket_, "--bundle", "/local.zip", "--mode", "none"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from /local.zip");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(std::filesystem::exists(root_ / "run/activate/reboot"));
    auto bad = test::run({kBin, "request", "--socket", socket_, "--bundle", "x", "--mode", "warp"});
    EXPECT_EQ(bad.exit_code, 2);
}

// Only root may drive the server. The socket's mode (0600) is the first gate: nobody cannot even
// connect. The peer's credentials are the second: with the mode opened up behind the server's
// back, nobody connects but is refused before a byte of its request is read, and the refusal is
// logged with its uid and pid.
TEST_F(ServeTest, NonRootPeerIsRefused) {
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
    EXPECT_EQ(mode_of(socket_) & 07777, 0600u);
    const std::string closed = request_as_nobody(socket_);
    EXPECT_NE(closed.find("error: connecting to " + socket_ + ": Permission denied"),
              std::string::npos)
        << closed;

    ASSERT_EQ(::chmod(socket_.c_str(), 0666), 0);
    const std::string refused = request_as_nobody(socket_);
    EXPECT_EQ(refused.rfind("reply 6: only root may request updates; this client runs as uid "
                            "65534 (pid ",
                            0),
              0u)
        << refused;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string log = test::read_file(dir_ / "serve.log");
    EXPECT_NE(log.find("activate[serve] warning: refused a connection from uid 65534 (pid "),
              std::string::npos)
        << log;
    // `activate request` says so and exits 6, as when it cannot connect at all.
    const std::string cli = as_nobody([&] {
        auto r = test::run(
            {kBin, "request", "--socket", socket_, "--bundle", "/local.zip", "--mode", "kexec"});
        return std::to_string(r.exit_code) + " " + r.err;
    });
    EXPECT_EQ(cli.rfind("6 activate[activate] error: refused: only root may request updates", 0),
              0u)
        << cli;
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// Connections that announce a full 1 MiB frame and then send (almost) nothing hold only what
// they sent: the server's memory does not grow with the announced sizes.
TEST_F(ServeTest, SilentClientsAnnouncingLargeFramesCostLittleMemory) {
    const long before = rss_kib(server_);
    ASSERT_GT(before, 0);
    constexpr int kClients = 200;
    std::vector<int> clients;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    const unsigned char start[] = {0x00, 0x10, 0x00, 0x00, '0', '1', '2', '3',
                                   '4',  '5',  '6',  '7',  '8', '9'};  // 1 MiB announced, 10 sent
    for (int i = 0; i < kClients; ++i) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << i;
        ASSERT_EQ(::write(fd, start, sizeof start), ssize_t(sizeof start));
        clients.push_back(fd);
    }
    // Answered after all of them were accepted and their first bytes read.
    EXPECT_EQ(send("b.zip", wire::ACTIVATION_REBOOT).code, ServeCode::unavailable);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const long after = rss_kib(server_);
    for (int fd : clients) ::close(fd);
    // Allocating the announced size would be kClients MiB (200 MiB).
    EXPECT_LT(after - before, 16 * 1024) << "RSS " << before << " KiB -> " << after << " KiB";
}

// The default socket, /run/activate/activate.sock under the sysroot, and its directory are
// root's alone even when serve starts with umask 000; an existing directory open to others is
// made private, one owned by another uid refused.
TEST(Serve, DefaultSocketIsPrivateWhateverTheUmask) {
    test::TempDir dir, root;
    test::write_file(dir / "p.yaml",
                     "activation_mode: none\n"
                     "payload: {plugin: fake_slots}\n"
                     "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    const std::vector<std::string> args = {"--policy",     (dir / "p.yaml").string(),
                                           "--plugin-dir", FAKE_PLUGIN_DIR,
                                           "--sysroot",    root.path().string()};
    const std::filesystem::path socket = root / "run/activate/activate.sock";
    auto run_server = [&](const std::string& log) {
        std::filesystem::remove(socket);  // a killed server leaves its socket behind
        const pid_t server = start_server(args, dir / log, 0);
        const bool up = wait_for(socket);
        EXPECT_TRUE(up) << test::read_file(dir / log);
        EXPECT_EQ(mode_of(root / "run/activate") & 07777, 0700u);
        EXPECT_TRUE(S_ISSOCK(mode_of(socket)));
        EXPECT_EQ(mode_of(socket) & 07777, 0600u);
        // `activate request` finds it through the same sysroot.
        auto r = test::run({kBin, "request", "--sysroot", root.path().string(), "--bundle",
                            "/b.zip", "--mode", "none"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        ::kill(server, SIGTERM);
        ::waitpid(server, nullptr, 0);
    };
    run_server("first.log");

    ASSERT_EQ(::chmod((root / "run/activate").c_str(), 0777), 0);
    run_server("second.log");
    EXPECT_NE(test::read_file(dir / "second.log")
                  .find((root / "run/activate").string() + " was open to others (mode 0777); "
                                                           "made it 0700"),
              std::string::npos)
        << test::read_file(dir / "second.log");

    ASSERT_EQ(::chown((root / "run/activate").c_str(), 65534, 65534), 0);
    auto refused = test::run([&] {
        std::vector<std::string> a{kBin, "serve"};
        a.insert(a.end(), args.begin(), args.end());
        return a;
    }());
    EXPECT_EQ(refused.exit_code, 6) << refused.err;
    EXPECT_NE(refused.err.find((root / "run/activate").string() +
                               " belongs to uid 65534, not to the uid this server runs as (0)"),
              std::string::npos)
        << refused.err;
}

// An explicit --socket gets mode 0600 too, whatever the umask.
TEST(Serve, ExplicitSocketIsPrivateWhateverTheUmask) {
    test::TempDir dir, root;
    test::write_file(dir / "p.yaml",
                     "activation_mode: none\npayload: {plugin: fake}\n"
                     "activation: {plugin: fake}\n");
    const std::filesystem::path socket = dir / "s.sock";
    const pid_t server =
        start_server({"--policy", (dir / "p.yaml").string(), "--plugin-dir", FAKE_PLUGIN_DIR,
                      "--sysroot", root.path().string(), "--socket", socket.string()},
                     dir / "serve.log", 0);
    EXPECT_TRUE(wait_for(socket)) << test::read_file(dir / "serve.log");
    EXPECT_EQ(mode_of(socket) & 07777, 0600u);
    ::kill(server, SIGTERM);
    ::waitpid(server, nullptr, 0);
}

// A listening UNIX stream socket at `path`, as systemd makes it for activate.socket; -1 on error.
int listening_socket(const std::filesystem::path& path, mode_t mode) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::chmod(path.c_str(), mode) != 0 || ::listen(fd, 16) != 0)
        return -1;
    return fd;
}

// Starts `activate serve` the way systemd does for a socket unit (sd_listen_fds(3)): `listening`
// as fd 3, LISTEN_FDS=`fds` and LISTEN_PID the server's own pid, or `listen_pid` when given.
pid_t start_activated_server(int listening, const std::vector<std::string>& args,
                             const std::filesystem::path& log, const std::string& fds = "1",
                             const std::string& listen_pid = "") {
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::freopen(log.c_str(), "w", stderr);
        if (::dup2(listening, 3) != 3) ::_exit(126);
        ::setenv("LISTEN_FDS", fds.c_str(), 1);
        // The pid after exec is this one.
        ::setenv("LISTEN_PID",
                 (listen_pid.empty() ? std::to_string(::getpid()) : listen_pid).c_str(), 1);
        std::vector<char*> argv{const_cast<char*>(kBin.c_str()), const_cast<char*>("serve")};
        for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(kBin.c_str(), argv.data());
        ::_exit(127);
    }
    return pid;
}

class SocketActivationTest : public ::testing::Test {
  protected:
    void SetUp() override {
        test::write_file(dir_ / "p.yaml",
                         "activation_mode: none\n"
                         "payload: {plugin: fake_slots}\n"
                         "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
        // Open to others, so that the peer-credential check is what refuses nobody.
        ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
        socket_ = dir_ / "passed.sock";
        listening_ = listening_socket(socket_, 0666);
        ASSERT_GE(listening_, 0) << std::strerror(errno);
    }
    void TearDown() override {
        if (server_ > 0) {
            ::kill(server_, SIGTERM);
            ::waitpid(server_, nullptr, 0);
        }
        if (listening_ >= 0) ::close(listening_);
    }
    std::vector<std::string> args() const {
        return {"--policy",  (dir_ / "p.yaml").string(), "--plugin-dir", FAKE_PLUGIN_DIR,
                "--sysroot", root_.path().string()};
    }
    // Starts the server with the socket, then drops this process's copy: only the server
    // holds it, so a request is answered by the server or not at all.
    void start(const std::string& fds = "1", const std::string& listen_pid = "") {
        server_ = start_activated_server(listening_, args(), dir_ / "serve.log", fds, listen_pid);
        ::close(listening_);
        listening_ = -1;
    }
    std::string log() const { return test::read_file(dir_ / "serve.log"); }

    test::TempDir dir_, root_;
    std::filesystem::path socket_;
    int listening_ = -1;
    pid_t server_ = -1;
};

// The socket systemd passed is the one served: a request through it runs the update, the server
// makes no socket of its own (none at the default path under the sysroot), and the socket stays
// systemd's: its file is still there after the server stopped.
TEST_F(SocketActivationTest, ServesThePassedSocket) {
    start();
    wire::UpdateNodeRequest request;
    request.set_bundle_url("/b.zip");
    request.set_activation_mode(wire::ACTIVATION_NONE);
    // A server that ignored fd 3 would leave the connection in the socket's backlog forever.
    auto pending = std::async(std::launch::async,
                              [&] { return send_update_request(socket_.string(), request); });
    if (pending.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
        ::kill(server_, SIGKILL);  // closes the socket: the client's read ends
        ::waitpid(server_, nullptr, 0);
        server_ = -1;
        FAIL() << "no answer on the passed socket within 20 s\n" << log();
    }
    Result<ServeReply> reply = pending.get();
    ASSERT_TRUE(reply.ok()) << reply.error().message() << "\n" << log();
    EXPECT_EQ(reply->code, ServeCode::ok) << reply->message;
    EXPECT_EQ(test::read_file(root_ / "slot-B"), "installed from /b.zip");
    EXPECT_NE(
        log().find("activate[serve] info: serving on " + socket_.string() + " (from systemd)"),
        std::string::npos)
        << log();
    EXPECT_FALSE(std::filesystem::exists(root_ / "run/activate/activate.sock"));
    ::kill(server_, SIGTERM);
    ::waitpid(server_, nullptr, 0);
    server_ = -1;
    EXPECT_TRUE(S_ISSOCK(mode_of(socket_)));
}

// The peer credentials are checked on a passed socket too, whatever mode systemd gave it.
TEST_F(SocketActivationTest, NonRootPeerIsRefused) {
    start();
    const std::string refused = request_as_nobody(socket_.string());
    EXPECT_EQ(refused.rfind("reply 6: only root may request updates; this client runs as uid "
                            "65534 (pid ",
                            0),
              0u)
        << refused << "\n"
        << log();
    EXPECT_FALSE(std::filesystem::exists(root_ / "slot-B"));
}

// LISTEN_PID naming another process: the variables were inherited, fd 3 is not for this server.
// It is left alone and the server makes its own default socket, as without systemd.
TEST_F(SocketActivationTest, WrongListenPidIsIgnored) {
    start("1", "1");
    const std::filesystem::path own = root_ / "run/activate/activate.sock";
    ASSERT_TRUE(wait_for(own)) << log();
    EXPECT_NE(log().find("LISTEN_PID=1 names another process than this one"), std::string::npos)
        << log();
    auto r = test::run({kBin, "request", "--sysroot", root_.path().string(), "--bundle", "/b.zip",
                        "--mode", "none"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

// More than one socket is a unit written for another program: a usage error naming LISTEN_FDS.
TEST_F(SocketActivationTest, MoreThanOneSocketIsRefused) {
    start("2");
    int status = 0;
    ASSERT_EQ(::waitpid(server_, &status, 0), server_);
    server_ = -1;
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 2) << log();
    EXPECT_NE(log().find("systemd passed LISTEN_FDS=2 sockets; activate serve takes exactly one"),
              std::string::npos)
        << log();
}

// When stderr is the journal (JOURNAL_STREAM names it: systemd.exec(5)) a line carries its
// syslog priority as "<N>" and no "activate[...] level:" prefix, which the journal records
// itself; when JOURNAL_STREAM names another file, stderr is not the journal.
TEST(JournalLog, PriorityPrefixOnlyWhenStderrIsTheJournal) {
    test::TempDir dir;
    const std::filesystem::path err = dir / "stderr", other = dir / "other";
    test::write_file(other, "");
    auto run_with_journal_stream = [&](const std::filesystem::path& journal) {
        test::write_file(err, "");
        struct stat st {};
        EXPECT_EQ(::stat(journal.c_str(), &st), 0);
        const std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
        const pid_t child = ::fork();
        if (child == 0) {
            std::freopen(err.c_str(), "w", stderr);
            ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
            ::execl(kBin.c_str(), kBin.c_str(), "status", "--policy",
                    (dir / "missing.yaml").c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        return test::read_file(err);
    };
    const std::string journal = run_with_journal_stream(err);
    EXPECT_EQ(journal.rfind("<3>activate: ", 0), 0u) << journal;
    EXPECT_EQ(journal.find("activate[activate] error"), std::string::npos) << journal;
    const std::string plain = run_with_journal_stream(other);
    EXPECT_EQ(plain.rfind("activate[activate] error: ", 0), 0u) << plain;
}

}  // namespace
}  // namespace activate
