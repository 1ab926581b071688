// `activate serve` and `activate request` as separate processes over a real UNIX socket.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <activate/serve.hpp>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "test_support.hpp"

namespace activate {
namespace {

const std::string kBin = ACTIVATE_BINARY;

class ServeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        test::write_file(dir_ / "kexec.yaml",
                         "activation_mode: kexec\npayload:\n  plugin: fake\n  settings: "
                         "{uses_slots: true, install_delay: 1500ms, absolute_bundles: true}\n"
                         "activation: {plugin: fake}\n"
                         "boot_control: {plugin: fake}\n");
        socket_ = (dir_ / "s.sock").string();
        server_ = ::fork();
        if (server_ == 0) {
            std::freopen((dir_ / "serve.log").c_str(), "w", stderr);
            ::execl(kBin.c_str(), kBin.c_str(), "serve", "--policy", (dir_ / "kexec.yaml").c_str(),
                    "--plugin-dir", FAKE_PLUGIN_DIR, "--sysroot", root_.path().c_str(), "--socket",
                    socket_.c_str(), nullptr);
            ::_exit(127);
        }
        for (int i = 0; i < 200 && !std::filesystem::exists(socket_); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        ASSERT_TRUE(std::filesystem::exists(socket_)) << test::read_file(dir_ / "serve.log");
    }
    void TearDown() override {
        ::kill(server_, SIGTERM);
        ::waitpid(server_, nullptr, 0);
    }
    ServeReply send(const std::string& bundle, wire::ActivationMode mode) {
        wire::UpdateNodeRequest request;
        request.set_bundle_url(bundle);
        request.set_activation_mode(mode);
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

}  // namespace
}  // namespace activate
