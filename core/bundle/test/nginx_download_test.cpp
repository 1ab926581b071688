// A signed format 2 bundle downloaded from a real HTTP server (nginx, test/support) and verified
// into a "slot", plainly and through the fault-injecting proxy: a cut connection resumes with
// Range and fetches the bundle once in total; a stall is retried or reported as SourceOptions
// say; lying lengths and a missing validator are refused, a 200 answer to a Range request is read
// through from the file's start. In
// every case the slot holds only whole verified chunks (issue 16 §5).
#include <gtest/gtest.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate_test/fault_proxy.hpp>
#include <activate_test/nginx.hpp>
#include <chrono>

#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

using std::chrono::milliseconds;
using test_support::Fault;
using test_support::FaultProxy;
using test_support::NginxServer;

constexpr uint32_t kChunk = 256 << 10;

class NginxDownload : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!test_support::nginx_binary())
            GTEST_SKIP() << "nginx is not installed (Debian: nginx-light, scripts/setup.sh)";
        write_whole(dir_ / "src/rootfs.img", image_);
        write_whole(dir_ / "src/uki.efi", "UKI");
        std::string zip;
        auto manifest =
            write_signed_bundle(string_sink(&zip), key_, "board-1", *BundleVersion::parse("2.0"),
                                {{"verity_rootfs.img", (dir_ / "src/rootfs.img").string()},
                                 {"kernel_efi.efi", (dir_ / "src/uki.efi").string()}},
                                nullptr, kChunk);
        ASSERT_TRUE(manifest.ok()) << manifest.error().message();
        bundle_size_ = zip.size();
        write_whole(dir_ / "www/b.zip", zip);
        nginx_ = std::make_unique<NginxServer>(dir_ / "www");
        ASSERT_TRUE(nginx_->running()) << nginx_->error();
    }

    static SourceOptions fast() {
        SourceOptions o;
        o.initial_backoff = milliseconds(50);
        o.max_backoff = milliseconds(200);
        o.connect_timeout = milliseconds(2000);
        o.low_speed_limit = 1000;
        o.low_speed_time = milliseconds(1000);
        o.max_attempts = 4;
        return o;
    }

    // Downloads and verifies the bundle at `url`, writing the image member into slot_ at the
    // offsets the sink is called with (as the slot installer does).
    Status install(const std::string& url, const SourceOptions& options) {
        slot_.assign(image_.size(), '\0');
        written_ = 0;
        TrustOptions trust;
        trust.keys = {{"k.pub", key_.public_key()}};
        trust.compatible = "board-1";
        ACTIVATE_ASSIGN(auto src, open_source(Sysroot("/"), url, options));
        ACTIVATE_ASSIGN(auto reader, BundleReader::open(std::move(src)));
        ACTIVATE_ASSIGN(auto v, VerifyingReader::open(std::move(reader), trust));
        while (true) {
            ACTIVATE_ASSIGN(auto member, v.next());
            if (!member) return {};
            if (member->name != "verity_rootfs.img") {
                ACTIVATE_TRY(v.skip());
                continue;
            }
            ACTIVATE_TRY(v.copy_to([&](std::span<const uint8_t> c) -> Status {
                if (written_ + c.size() > slot_.size()) {
                    return Error(ErrorKind::internal, "sink got more than the image");
                }
                std::copy(c.begin(), c.end(), slot_.begin() + written_);
                written_ += c.size();
                return {};
            }));
        }
    }

    // What a failed install may leave: whole chunks, each the image's, and nothing after them.
    void expect_only_verified_chunks() const {
        EXPECT_TRUE(written_ % kChunk == 0 || written_ == image_.size()) << written_;
        EXPECT_EQ(slot_.compare(0, written_, image_, 0, written_), 0);
        EXPECT_EQ(slot_.find_first_not_of('\0', written_), std::string::npos);
    }

    // Same as image_ except where it matters: no '\0' run is mistaken for unwritten bytes.
    static std::string make_image() {
        std::string s = random_bytes(8 << 20, 16);
        for (auto& c : s)
            if (c == '\0') c = 1;
        return s;
    }

    TempDir dir_;
    SecretKey key_ = *generate_secret_key();
    const std::string image_ = make_image();
    uint64_t bundle_size_ = 0;
    std::unique_ptr<NginxServer> nginx_;
    std::string slot_;
    uint64_t written_ = 0;
};

TEST_F(NginxDownload, InstallsPlainly) {
    auto st = install(nginx_->url("/b.zip"), fast());
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(written_, image_.size());
    EXPECT_TRUE(slot_ == image_);
    auto log = nginx_->requests(1);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].status, 200);
    EXPECT_EQ(log[0].body_bytes_sent, bundle_size_);
}

TEST_F(NginxDownload, ACutConnectionResumesWithRangeAndFetchesTheBundleOnce) {
    Fault cut;
    cut.cut_after = bundle_size_ / 2;
    FaultProxy proxy(nginx_->port(), {cut});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_TRUE(slot_ == image_);
    auto reqs = proxy.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].body_forwarded, bundle_size_ / 2);
    EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(bundle_size_ / 2) + "-");
    EXPECT_EQ(reqs[1].status, 206);
    // 1.0x: every byte of the bundle reached the client once.
    EXPECT_EQ(proxy.body_bytes_forwarded(), bundle_size_);
    // nginx sent exactly the rest for the resume. (Its count for the cut request also holds
    // what sat in the loopback socket buffers at the cut, up to several MiB: lost in transit,
    // as bytes in flight are when a real connection drops.)
    auto log = nginx_->requests(2);
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[1].status, 206);
    EXPECT_EQ(log[1].body_bytes_sent, bundle_size_ - bundle_size_ / 2);
}

TEST_F(NginxDownload, AStallPastTheTimeoutIsRetriedFromWhereItStopped) {
    Fault stall;
    stall.stall_after = bundle_size_ / 3;
    stall.stall_for = milliseconds(30000);
    FaultProxy proxy(nginx_->port(), {stall});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    const auto start = std::chrono::steady_clock::now();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_TRUE(st.ok()) << st.error().message();
    // The low-speed limit ended the stall, not its 30 s. (libcurl judges the speed over its
    // last few seconds of samples, so it takes ~5-7 s to call 1 s of silence too slow.)
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(15000));
    EXPECT_TRUE(slot_ == image_);
    auto reqs = proxy.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(bundle_size_ / 3) + "-");
    EXPECT_EQ(proxy.body_bytes_forwarded(), bundle_size_);
}

TEST_F(NginxDownload, AStallWithoutRetriesLeftIsAClearError) {
    Fault stall;
    stall.stall_after = bundle_size_ / 3;
    stall.stall_for = milliseconds(10000);
    FaultProxy proxy(nginx_->port(), {stall});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    SourceOptions o = fast();
    o.max_attempts = 1;
    auto st = install(proxy.url("/b.zip"), o);
    ASSERT_FALSE(st.ok());
    const std::string& msg = st.error().message();
    EXPECT_EQ(st.error().kind(), ErrorKind::activation) << msg;
    EXPECT_NE(msg.find("GET " + proxy.url("/b.zip")), std::string::npos) << msg;
    EXPECT_NE(msg.find("too slow"), std::string::npos) << msg;
    EXPECT_NE(msg.find("gave up after 1 attempts"), std::string::npos) << msg;
    expect_only_verified_chunks();
    EXPECT_LT(written_, image_.size());
}

TEST_F(NginxDownload, AShortContentLengthIsAnIncompleteBundle) {
    Fault lie;
    lie.content_length = std::to_string(bundle_size_ / 2);
    FaultProxy proxy(nginx_->port(), {lie});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("incomplete"), std::string::npos) << st.error().message();
    expect_only_verified_chunks();
    EXPECT_LT(written_, image_.size());
}

TEST_F(NginxDownload, ALongContentLengthIsRefused) {
    // The body ends early for the client (libcurl: partial file), so it asks for the rest with
    // Range, which the server cannot satisfy: the bundle is not accepted.
    Fault lie;
    lie.content_length = std::to_string(bundle_size_ + 4096);
    FaultProxy proxy(nginx_->port(), {lie});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_FALSE(st.ok());
    const std::string& msg = st.error().message();
    EXPECT_NE(msg.find("HTTP 416 to a request to resume at byte " + std::to_string(bundle_size_)),
              std::string::npos)
        << msg;
    expect_only_verified_chunks();
}

TEST_F(NginxDownload, AResumeWithTheWrongContentRangeIsRefused) {
    Fault cut;
    cut.cut_after = bundle_size_ / 2;
    Fault lie;
    lie.content_range = "bytes " + std::to_string(bundle_size_ / 2 - 1) + "-" +
                        std::to_string(bundle_size_ - 1) + "/" + std::to_string(bundle_size_);
    FaultProxy proxy(nginx_->port(), {cut, lie});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_FALSE(st.ok());
    const std::string& msg = st.error().message();
    EXPECT_NE(msg.find("Content-Range \"" + *lie.content_range + "\" instead of starting at byte " +
                       std::to_string(bundle_size_ / 2)),
              std::string::npos)
        << msg;
    expect_only_verified_chunks();
    EXPECT_LT(written_, image_.size());
}

TEST_F(NginxDownload, ACutWithoutValidatorIsNotSpliced) {
    Fault cut;
    cut.cut_after = bundle_size_ / 2;
    cut.strip_validators = true;
    FaultProxy proxy(nginx_->port(), {cut}, cut);
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_FALSE(st.ok());
    const std::string& msg = st.error().message();
    EXPECT_NE(msg.find("no ETag or Last-Modified"), std::string::npos) << msg;
    EXPECT_EQ(proxy.requests().size(), 1u);
    expect_only_verified_chunks();
    EXPECT_LT(written_, image_.size());
}

// A proxy that drops the Range header: nginx answers the resume with 200 and the whole file
// (same ETag, same length). The download reads it again from its start, drops the half it had,
// and the install completes with every chunk verified.
TEST_F(NginxDownload, AWholeFileAnswerToARangeRequestIsReadThrough) {
    Fault cut;
    cut.cut_after = bundle_size_ / 2;
    Fault no_range;
    no_range.ignore_range = true;
    FaultProxy proxy(nginx_->port(), {cut}, no_range);
    ASSERT_TRUE(proxy.running()) << proxy.error();
    auto st = install(proxy.url("/b.zip"), fast());
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_TRUE(slot_ == image_);
    auto reqs = proxy.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(bundle_size_ / 2) + "-");
    EXPECT_EQ(reqs[1].status, 200);
    // The whole file a second time: 1.5x the bundle in total.
    EXPECT_EQ(proxy.body_bytes_forwarded(), bundle_size_ / 2 + bundle_size_);
}

}  // namespace
}  // namespace activate::bundle::test
