// Signed bundles through the real `activate` binary, the shipped config/update-kexec.yaml and the
// real uki, efi and kexec plugins on a sysroot (disk image made by sfdisk, empty efivarfs
// directory, /proc/cmdline). A bundle refused up front (key, signature, compatible, version)
// changes nothing at all, EFI variables included; one that fails while it is written leaves the
// target's boot entry inactive, nothing staged for kexec, no jump and BootNext unset: the
// pipeline enables and stages only after install() succeeded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/bundle/reader.hpp>
#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/source.hpp>
#include <activate/bundle/writer.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;

using Outcome = CliOutcome;

// An install of a 12 MiB image in 256 KiB chunks (48, recorded every 2: 1/32 of the image rounded
// up to whole chunks), killed (SIGKILL) once the server has sent half of it and the progress
// record stopped moving.
struct KilledInstall {
    std::string image, zip;
    size_t data_offset = 0;  // where the image's data starts in the zip (stored as it is)
    uint64_t synced = 0;     // chunks the record holds
};

class LoopbackHttpServer;

class SignedUpdateCli : public CliMachine {
  protected:
    void make_the_big_bundle(KilledInstall& k);
    void kill_an_install_midway(const LoopbackHttpServer& server, KilledInstall& k);
    // work()/<name>.zip: the test UKI and `image` (as work()/<name>.img) signed with the release
    // key in chunks of `chunk` bytes; the bundle's bytes in `zip`.
    void make_chunked_bundle(const std::string& name, const std::string& image, uint32_t chunk,
                             std::string& zip);

    SignedUpdateCli() { image_size_ = 2 << 20; }

    // `activate bundle create` into the sysroot as /<name>.
    void create(const std::string& name, const std::string& version,
                const std::string& compatible = "metropolis-x86_64") {
        Outcome r = create_bundle(root() / name, version, compatible);
        ASSERT_EQ(r.code, 0) << r.err;
    }

    std::string policy_args() const { return shipped_policy("kexec", root()); }

    // Writes `bytes` at the start of partition `index` (0: the ESP, 1: slot A, 2: slot B) of
    // /disk.img; returns where that partition starts.
    uint64_t overwrite_slot(int index, const std::string& bytes) {
        CliOutcome dump = run_shell("sfdisk --json " + quote((root() / "disk.img").string()));
        EXPECT_EQ(dump.code, 0) << dump.err;
        const auto table = nlohmann::json::parse(dump.out);
        const uint64_t start =
            table["partitiontable"]["partitions"][index]["start"].get<uint64_t>() * 512;
        std::fstream disk(root() / "disk.img", std::ios::in | std::ios::out | std::ios::binary);
        disk.seekp(std::streamoff(start));
        disk.write(bytes.data(), std::streamsize(bytes.size()));
        EXPECT_TRUE(disk.good());
        return start;
    }

    Outcome update(const std::string& bundle, const std::string& extra = "") {
        return run_activate(policy_args() + " --bundle " + bundle + " " + extra);
    }

    // `activate status --json` under the policy: boot entries, BootNext, kexec state.
    std::string status() {
        Outcome r = run_activate("status --json " + policy_args());
        EXPECT_EQ(r.code, 0) << r.err;
        return r.out;
    }

    // After a failure while writing: slot B's entry exists (begin_install made it) but stays
    // disabled; nothing staged, no jump, no BootNext.
    void expect_nothing_activated() {
        EXPECT_FALSE(fs::exists(root() / "run/activate/kexec/kernel"));
        EXPECT_FALSE(fs::exists(root() / "run/activate/reboot"));
        const std::string s = status();
        EXPECT_NE(s.find("\"boot_next\":null"), std::string::npos) << s;
        EXPECT_NE(s.find("\"kexec_loaded\":false"), std::string::npos) << s;
        const auto doc = nlohmann::json::parse(s, nullptr, false);
        ASSERT_FALSE(doc.is_discarded()) << s;
        bool seen_b = false;
        for (const auto& slot : doc["boot"]["slots"]) {
            if (slot["letter"] != "B") continue;
            seen_b = true;
            EXPECT_EQ(slot["active"], false) << s;
        }
        EXPECT_TRUE(seen_b) << s;
    }

    // After a refusal up front: not one EFI variable written (the efivarfs directory starts
    // empty), no version record, nothing staged, no jump.
    void expect_untouched() {
        EXPECT_TRUE(fs::is_empty(root() / "sys/firmware/efi/efivars"));
        EXPECT_FALSE(fs::exists(root() / "esp/EFI/activate/versions.json"));
        EXPECT_FALSE(fs::exists(root() / "run/activate/kexec/kernel"));
        EXPECT_FALSE(fs::exists(root() / "run/activate/reboot"));
    }
};

TEST_F(SignedUpdateCli, SignedBundleInstallsStagesAndJumps) {
    create("b.zip", "1.2.3");
    Outcome verify =
        run_activate("bundle verify --keys " + quote((root() / "etc/activate/keys").string()) +
                     " --compatible metropolis-x86_64 " + quote((root() / "b.zip").string()));
    EXPECT_EQ(verify.code, 0) << verify.err;
    Outcome r = update("/b.zip");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("signature by /etc/activate/keys/release.pub"), std::string::npos)
        << r.err;
    EXPECT_TRUE(fs::exists(root() / "run/activate/kexec/kernel"));
    EXPECT_EQ(read_file(root() / "run/activate/reboot"), "kexec\n");
    EXPECT_NE(read_file(root() / "esp/EFI/activate/versions.json").find("\"1.2.3\""),
              std::string::npos);
    // Issue 12: the UKI a cold boot of slot B will start names slot B, and kexec booted exactly
    // that command line.
    const std::string on_esp = read_file(root() / "esp/EFI/metropolis/boot-b.efi");
    EXPECT_NE(on_esp.find("root=PARTLABEL=METROPOLIS-SYSTEM-B ro"), std::string::npos);
    EXPECT_EQ(on_esp.find("METROPOLIS-SYSTEM-X"), std::string::npos);
    EXPECT_EQ(read_file(root() / "run/activate/kexec/cmdline"),
              "root=PARTLABEL=METROPOLIS-SYSTEM-B ro");
    const std::string s = status();
    const size_t b = s.find("\"letter\":\"B\"");
    ASSERT_NE(b, std::string::npos) << s;
    EXPECT_NE(s.find("\"active\":true", b), std::string::npos) << s;
}

TEST_F(SignedUpdateCli, TamperedBundleActivatesNothing) {
    create("b.zip", "1.2.3");
    // Rebuilt member by member (same manifest and signature) with one bit of the image flipped:
    // the zip's own CRC-32s are right, so only the signed digest can notice.
    const std::string good = read_file(root() / "b.zip");
    auto reader = bundle::BundleReader::open(bundle::memory_source(
        std::span(reinterpret_cast<const uint8_t*>(good.data()), good.size())));
    ASSERT_TRUE(reader.ok());
    std::string bad;
    bundle::BundleWriter writer(bundle::string_sink(&bad));
    while (true) {
        auto member = reader->next();
        ASSERT_TRUE(member.ok()) << member.error().message();
        if (!*member) break;
        std::string data;
        ASSERT_TRUE(reader
                        ->copy_to([&](std::span<const uint8_t> c) -> Status {
                            data.append(reinterpret_cast<const char*>(c.data()), c.size());
                            return {};
                        })
                        .ok());
        if ((*member)->name == "verity_rootfs.img") data[1000] ^= 0x01;
        ASSERT_TRUE(
            writer
                .add_member((*member)->name,
                            std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()))
                .ok());
    }
    ASSERT_TRUE(writer.finish().ok());
    write_file(root() / "bad.zip", bad);

    // An earlier run installed b.zip into B and staged it without jumping: that image would
    // start the slot the bad bundle is about to overwrite, so writing unloads it.
    ASSERT_EQ(update("/b.zip", "--set activation_mode=none").code, 0);
    ASSERT_TRUE(fs::exists(root() / "run/activate/kexec/kernel"));
    // Slot B now holds the image the manifest describes, so a delta install would not fetch the
    // tampered chunk at all; its first bytes are damaged so that the chunk must be fetched.
    overwrite_slot(2, std::string(4096, '\0'));
    Outcome r = update("/bad.zip");
    EXPECT_EQ(r.code, 8) << r.err;
    EXPECT_NE(r.err.find("has SHA-256"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("unloaded the kexec image staged earlier"), std::string::npos) << r.err;
    expect_nothing_activated();
    EXPECT_EQ(read_file(root() / "esp/EFI/activate/versions.json").find("\"B\""),
              std::string::npos);
}

// The bundle tests' loopback server (core/bundle/test/http_server.py) serving `file`: it prints
// its port and exits when its stdin closes.
class LoopbackHttpServer {
  public:
    explicit LoopbackHttpServer(const std::string& file) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::execlp("python3", "python3", HTTP_SERVER, file.c_str(), nullptr);
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = in[1];
        std::string line;
        pollfd pfd{out[0], POLLIN, 0};
        while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10000) > 0) {
            char buf[64];
            const ssize_t n = ::read(out[0], buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, size_t(n));
        }
        ::close(out[0]);
        if (line.find('\n') != std::string::npos)
            base_ = "http://127.0.0.1:" + line.substr(0, line.find('\n'));
    }
    ~LoopbackHttpServer() {
        if (stdin_ >= 0) ::close(stdin_);
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    LoopbackHttpServer(const LoopbackHttpServer&) = delete;
    LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

    // Empty when the server did not start.
    const std::string& base() const { return base_; }

  private:
    pid_t pid_ = -1;
    int stdin_ = -1;
    std::string base_;
};

// A bundle URL answered with 404: the error names the status and the URL, the exit code is 6
// (activation failed: I/O, README "Exit codes"), nothing changed. The first read of the bundle
// used to turn it into "ends at byte 0 without a central directory", exit 5.
TEST_F(SignedUpdateCli, HttpErrorNamesStatusAndUrlAndExitsSix) {
    if (!run("command -v python3 >/dev/null")) GTEST_SKIP() << "python3 not installed";
    create("b.zip", "1.2.3");
    LoopbackHttpServer server((root() / "b.zip").string());
    ASSERT_FALSE(server.base().empty()) << "the loopback HTTP server did not start";
    const std::string url = server.base() + "/missing.zip";
    Outcome r = update(url);
    EXPECT_EQ(r.code, 6) << r.err;
    EXPECT_NE(r.err.find("GET " + url + ": HTTP 404"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("central directory"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    expect_untouched();

    // The same server delivers the bundle itself.
    r = update(server.base() + "/ok");
    EXPECT_EQ(r.code, 0) << r.err;
}

void SignedUpdateCli::kill_an_install_midway(const LoopbackHttpServer& server, KilledInstall& k) {
    const fs::path record = root() / "esp/EFI/activate/install-progress.json";
    const std::string first_url =
        server.base() + "/stall-after/" + std::to_string(k.data_offset + (6 << 20));
    const std::string err1 = (work() / "run1.err").string();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = "exec " + std::string(ACTIVATE_BINARY) + " " + policy_args() +
                                " --bundle " + first_url + " 2>" + quote(err1);
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
        ::_exit(127);
    }
    // Killed once the record shows at least 5 of those 6 MiB synced and then stays the same
    // for a second (the run waits for the stalled server).
    int unchanged = 0;
    for (int i = 0; i < 600 && (k.synced < 20 || unchanged < 10); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!fs::exists(record)) continue;
        const auto doc = nlohmann::json::parse(read_file(record), nullptr, false);
        if (doc.is_discarded() || !doc.contains("chunks_synced")) continue;
        const uint64_t now = doc["chunks_synced"].get<uint64_t>();
        unchanged = now == k.synced ? unchanged + 1 : 0;
        k.synced = now;
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "run 1 ended by itself: " << read_file(err1);
    ASSERT_GE(k.synced, 20u) << read_file(err1);
    ASSERT_LE(k.synced, 24u);
}

void SignedUpdateCli::make_chunked_bundle(const std::string& name, const std::string& image,
                                          uint32_t chunk, std::string& zip) {
    write_file(work() / (name + ".img"), image);
    auto secret = bundle::parse_secret_key(read_file(work() / "release.secret"), "release.secret");
    ASSERT_TRUE(secret.ok()) << secret.error().message();
    auto made =
        bundle::write_signed_bundle(bundle::string_sink(&zip), *secret, "metropolis-x86_64",
                                    *bundle::BundleVersion::parse("1.2.3"),
                                    {{"kernel_efi.efi", (work() / "kernel_efi.efi").string()},
                                     {"verity_rootfs.img", (work() / (name + ".img")).string()}},
                                    nullptr, chunk);
    ASSERT_TRUE(made.ok()) << made.error().message();
    write_file(work() / (name + ".zip"), zip);
}

void SignedUpdateCli::make_the_big_bundle(KilledInstall& k) {
    constexpr uint32_t kChunk = 256 << 10;
    k.image = random_bytes(12 << 20, 64);
    ASSERT_NO_FATAL_FAILURE(make_chunked_bundle("big", k.image, kChunk, k.zip));
    k.data_offset = k.zip.find(k.image.substr(0, 64));
    ASSERT_NE(k.data_offset, std::string::npos);
}

// Issue 16 §3: an install killed (SIGKILL) about half way through the image continues on the next
// run from the last chunk it had verified and synced: the second run asks the server for the
// rest of the image with one Range request and writes only the chunks after the record's, the
// slot ends byte-identical to the image, and until then slot B's boot entry stays disabled.
TEST_F(SignedUpdateCli, InstallKilledMidwayContinuesFromItsLastSyncedChunk) {
    if (!run("command -v python3 >/dev/null")) GTEST_SKIP() << "python3 not installed";
    constexpr uint32_t kChunk = 256 << 10;
    KilledInstall k;
    ASSERT_NO_FATAL_FAILURE(make_the_big_bundle(k));
    const std::string& image = k.image;
    const std::string& zip = k.zip;
    const size_t data_offset = k.data_offset;
    LoopbackHttpServer server((work() / "big.zip").string());
    ASSERT_FALSE(server.base().empty()) << "the loopback HTTP server did not start";
    const fs::path record = root() / "esp/EFI/activate/install-progress.json";
    ASSERT_NO_FATAL_FAILURE(kill_an_install_midway(server, k));
    const uint64_t synced = k.synced;
    const uint64_t kept = synced * kChunk;
    expect_nothing_activated();
    EXPECT_FALSE(fs::exists(root() / "esp/EFI/metropolis/boot-b.efi"));

    // Run 2: the same bundle into the same slot.
    Outcome r = update(server.base() + "/ranged");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("resuming the install: chunks 0.." + std::to_string(synced - 1) + " (" +
                         std::to_string(kept) + " bytes) were verified and synced"),
              std::string::npos)
        << r.err;
    const std::string disk = read_file(root() / "disk.img");
    const size_t slot_b = disk.find(image.substr(0, 64));
    ASSERT_NE(slot_b, std::string::npos);
    EXPECT_TRUE(disk.compare(slot_b, image.size(), image) == 0) << "slot B differs from the image";
    EXPECT_FALSE(fs::exists(record));
    // One Range request, from the first chunk the record did not hold.
    const LoopbackHttpServer* s = &server;
    auto ask = [&](const std::string& route) {
        Outcome q = run_shell(
            "python3 -c \"import urllib.request,sys; "
            "sys.stdout.write(urllib.request.urlopen('" +
            s->base() + route + "').read().decode())\"");
        return q.out;
    };
    EXPECT_EQ(ask("/ranges/ranged"), std::to_string(data_offset + kept));
    const uint64_t sent = std::stoull(ask("/sent/ranged"));
    const uint64_t ranged = std::stoull(ask("/sent/ranged@ranges"));
    const uint64_t rest = zip.size() - data_offset - kept;
    // The Range response carried exactly the rest of the bundle from the first missing chunk.
    EXPECT_EQ(ranged, rest);
    // The first response (manifest, signature, UKI) was dropped at the skip; it had run ahead by
    // what filled the download ring (1 MiB) and the sockets' buffers, a constant: on loopback
    // the kernel lets several MiB go out before the client reads them.
    std::printf(
        "install killed at 50 %%: next run fetched %.1f %% and wrote %.1f %% of the "
        "%zu-byte image (%llu bytes in its Range response, %llu in the dropped first "
        "response)\n",
        100.0 * double(sent) / double(image.size()),
        100.0 * double(image.size() - kept) / double(image.size()), image.size(),
        static_cast<unsigned long long>(ranged), static_cast<unsigned long long>(sent - ranged));
    EXPECT_LT(sent - ranged, data_offset + (8u << 20));
    EXPECT_LE(image.size() - kept, image.size() * 55 / 100);
}

// A resumed run over a server that offers ranges and then answers the Range request with 416
// reads the bundle again from its start instead of failing (and failing again on every later
// run at the same point): the install completes, the chunks the record holds are not rewritten.
TEST_F(SignedUpdateCli, AResumeOverAServerThatRefusesRangesReadsTheBundleThrough) {
    if (!run("command -v python3 >/dev/null")) GTEST_SKIP() << "python3 not installed";
    KilledInstall k;
    ASSERT_NO_FATAL_FAILURE(make_the_big_bundle(k));
    LoopbackHttpServer server((work() / "big.zip").string());
    ASSERT_FALSE(server.base().empty()) << "the loopback HTTP server did not start";
    const fs::path record = root() / "esp/EFI/activate/install-progress.json";
    ASSERT_NO_FATAL_FAILURE(kill_an_install_midway(server, k));
    ASSERT_TRUE(fs::exists(record));

    Outcome r = update(server.base() + "/ranged-refused");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("resuming the install"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the server offered byte ranges but refused a Range request (HTTP 416)"),
              std::string::npos)
        << r.err;
    const std::string disk = read_file(root() / "disk.img");
    const size_t slot_b = disk.find(k.image.substr(0, 64));
    ASSERT_NE(slot_b, std::string::npos);
    EXPECT_TRUE(disk.compare(slot_b, k.image.size(), k.image) == 0) << "slot B differs";
    EXPECT_FALSE(fs::exists(record));
}

// Delta (issue 16 §4): the running slot A holds the old image; the new one differs in 2 of its
// 48 chunks, and one more chunk of slot A was damaged. Slot B ends byte-identical to the new
// image, and the server was asked only for those 3 chunks (one Range request each, every run
// of chunks found locally being one skip) and for the bundle's tail.
TEST_F(SignedUpdateCli, DeltaFetchesOnlyTheChunksTheRunningSlotLacks) {
    if (!run("command -v python3 >/dev/null")) GTEST_SKIP() << "python3 not installed";
    constexpr uint32_t kChunk = 256 << 10;
    const std::string old_image = random_bytes(12 << 20, 65);
    std::string image = old_image;
    for (size_t changed : {10u, 30u}) image[changed * kChunk + 1000] ^= 0x5a;
    std::string zip;
    ASSERT_NO_FATAL_FAILURE(make_chunked_bundle("delta", image, kChunk, zip));
    const size_t data_offset = zip.find(image.substr(0, 64));
    ASSERT_NE(data_offset, std::string::npos);

    // The old image in slot A (the running one), with chunk 40 damaged there.
    std::string in_a = old_image;
    in_a[40 * kChunk + 7] ^= 0x01;
    const uint64_t slot_a = overwrite_slot(1, in_a);

    LoopbackHttpServer server((work() / "delta.zip").string());
    ASSERT_FALSE(server.base().empty()) << "the loopback HTTP server did not start";
    Outcome r = update(server.base() + "/ranged", "--progress");
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string disk = read_file(root() / "disk.img");
    const size_t slot_b = disk.find(image.substr(0, 64), slot_a + 1);
    ASSERT_NE(slot_b, std::string::npos);
    EXPECT_TRUE(disk.compare(slot_b, image.size(), image) == 0) << "slot B differs from the image";
    EXPECT_NE(r.err.find(std::to_string(3 * kChunk) + " bytes of \"verity_rootfs.img\" fetched, " +
                         std::to_string(45 * kChunk) + " reused from this disk"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("image: " + std::to_string(3 * kChunk) + " bytes fetched, " +
                         std::to_string(45 * kChunk) + " reused"),
              std::string::npos)
        << r.err;

    const LoopbackHttpServer* s = &server;
    auto ask = [&](const std::string& route) {
        Outcome q = run_shell(
            "python3 -c \"import urllib.request,sys; "
            "sys.stdout.write(urllib.request.urlopen('" +
            s->base() + route + "').read().decode())\"");
        return q.out;
    };
    // Asked from the server's side: one Range request per fetched run of chunks (10, 30, 40)
    // and one for what follows the image; nothing else of the image was asked for.
    auto at = [&](uint64_t chunk) { return std::to_string(data_offset + chunk * kChunk); };
    EXPECT_EQ(ask("/ranges/ranged"), at(10) + "," + at(30) + "," + at(40) + "," +
                                         std::to_string(data_offset + image.size()));
    // Each Range request before a skip is closed (bytes=N-M): the Range responses carried
    // exactly the 3 chunks and what follows the image. The first response (manifest,
    // signature, UKI) ran ahead by the download ring and the sockets' buffers before the first
    // skip dropped it, a constant (as for a resumed install).
    const uint64_t sent = std::stoull(ask("/sent/ranged"));
    const uint64_t ranged = std::stoull(ask("/sent/ranged@ranges"));
    EXPECT_EQ(ranged, 3 * kChunk + (zip.size() - data_offset - image.size()));
    EXPECT_LT(sent - ranged, data_offset + (8u << 20));
    std::printf(
        "delta install, 3 of 48 chunks fetched: the server sent %llu bytes (%.1f %% of "
        "the %zu-byte image), %llu of them in 4 Range responses\n",
        static_cast<unsigned long long>(sent), 100.0 * double(sent) / double(image.size()),
        image.size(), static_cast<unsigned long long>(ranged));

    // The same bundle from a local file is read, not looked up (reading it costs what reading
    // the slots would): nothing is reused, although slot B now holds every chunk.
    write_file(root() / "delta.zip", zip);
    Outcome local = update("/delta.zip");
    ASSERT_EQ(local.code, 0) << local.err;
    EXPECT_NE(local.err.find(std::to_string(image.size()) +
                             " bytes of \"verity_rootfs.img\" fetched, 0 reused"),
              std::string::npos)
        << local.err;
}

// `status` and `status --json` say what the last install into a slot fetched and reused
// (issue 16 §4), from the slot's record in versions.json: a delta install of a 4 MiB image in 16
// chunks of which one changed fetched that chunk and reused the other 15 from slot A. Slot A,
// never installed by activate, has no such figures.
TEST_F(SignedUpdateCli, StatusShowsWhatTheLastInstallFetchedAndReused) {
    constexpr uint32_t kChunk = 256 << 10;
    const std::string old_image = random_bytes(16 * kChunk, 66);
    std::string image = old_image;
    image[5 * kChunk + 99] ^= 0x5a;
    std::string zip;
    ASSERT_NO_FATAL_FAILURE(make_chunked_bundle("delta4", image, kChunk, zip));
    overwrite_slot(1, old_image);

    // Downloaded: delta chunks are looked up for downloads only.
    if (!run("command -v python3 >/dev/null")) GTEST_SKIP() << "python3 not installed";
    LoopbackHttpServer server((work() / "delta4.zip").string());
    ASSERT_FALSE(server.base().empty()) << "the loopback HTTP server did not start";
    Outcome r = update(server.base() + "/ranged");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto doc = nlohmann::json::parse(status(), nullptr, false);
    ASSERT_FALSE(doc.is_discarded());
    const nlohmann::json expected = {
        {"image_bytes", 16 * kChunk}, {"fetched_bytes", kChunk}, {"reused_bytes", 15 * kChunk}};
    EXPECT_EQ(doc["slots"]["B"]["last_install"], expected) << doc.dump();
    EXPECT_FALSE(doc["slots"]["A"].contains("last_install")) << doc.dump();

    Outcome text = run_activate("status " + policy_args());
    ASSERT_EQ(text.code, 0) << text.err;
    for (const std::string& line : {"\"fetched_bytes\": " + std::to_string(kChunk),
                                    "\"reused_bytes\": " + std::to_string(15 * kChunk)})
        EXPECT_NE(text.out.find(line), std::string::npos) << line << " in\n" << text.out;
}

TEST_F(SignedUpdateCli, RefusalsExitEightAndActivateNothing) {
    create("other.zip", "1.2.3", "some-other-board");
    Outcome r = update("/other.zip");
    EXPECT_EQ(r.code, 8) << r.err;
    EXPECT_NE(r.err.find("is for \"some-other-board\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing was written"), std::string::npos) << r.err;
    expect_untouched();

    // Not signed: an Info-ZIP zip of the same files.
    ASSERT_TRUE(run("cd " + quote(work().string()) + " && zip -q -X " +
                    quote((root() / "plain.zip").string()) + " kernel_efi.efi verity_rootfs.img"));
    r = update("/plain.zip");
    EXPECT_EQ(r.code, 8) << r.err;
    EXPECT_NE(r.err.find("is not signed"), std::string::npos) << r.err;
    expect_untouched();

    // ...unless the policy says so, with a warning.
    r = update("/plain.zip", "--set payload.settings.allow_unsigned=true");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: allow_unsigned is set"), std::string::npos) << r.err;
}

TEST_F(SignedUpdateCli, DowngradeNeedsTheFlag) {
    create("new.zip", "2.0");
    ASSERT_EQ(update("/new.zip").code, 0);
    // Slot B runs 2.0 now, marked good (an install is refused while it is on trial); a 1.9
    // bundle for slot A is older.
    write_file(root() / "proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-B ro\n");
    fs::remove_all(root() / "run");
    ASSERT_EQ(run_activate("mark-good " + policy_args()).code, 0);
    create("old.zip", "1.9");
    Outcome r = update("/old.zip");
    EXPECT_EQ(r.code, 8) << r.err;
    EXPECT_NE(r.err.find("bundle version 1.9 is older than the running slot B's 2.0"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(root() / "run/activate/kexec/kernel"));
    r = update("/old.zip", "--allow-downgrade");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::exists(root() / "run/activate/kexec/kernel"));
}

TEST_F(SignedUpdateCli, BundleTools) {
    // keygen: secret key 0600, never overwritten.
    EXPECT_EQ(fs::status(work() / "release.secret").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(read_file(work() / "release.pub").rfind("activate-ed25519-public ", 0), 0u);
    Outcome again = run_activate("bundle keygen -o " + quote((work() / "release").string()));
    EXPECT_EQ(again.code, 2);
    EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;

    create("b.zip", "1.2.3");
    const std::string b = quote((root() / "b.zip").string());
    Outcome info = run_activate("bundle info " + b);
    ASSERT_EQ(info.code, 0) << info.err;
    EXPECT_NE(info.out.find("compatible:     metropolis-x86_64"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("version:        1.2.3"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("verity_rootfs.img  2097152 bytes  1 chunk of 4194304 bytes, each "
                            "with its SHA-256"),
              std::string::npos)
        << info.out;
    Outcome json = run_activate("bundle info --json " + b);
    ASSERT_EQ(json.code, 0) << json.err;
    EXPECT_NE(json.out.find("\"version\":\"1.2.3\""), std::string::npos) << json.out;
    EXPECT_NE(json.out.find("{\"name\":\"kernel_efi.efi\",\"size\":"), std::string::npos)
        << json.out;
    EXPECT_NE(json.out.find("\"chunk_size\":4194304,\"chunks\":1}"), std::string::npos) << json.out;
    EXPECT_NE(json.out.find("\"has_signature\":true,\"signature_checked\":false"),
              std::string::npos)
        << json.out;
    // A bundle path holding a quote, a control character and a byte that is not UTF-8 still
    // gives one JSON document, with the invalid byte replaced by U+FFFD.
    const fs::path odd = root() / "b \"\t\xff.zip";
    fs::copy_file(root() / "b.zip", odd);
    Outcome odd_json = run_activate("bundle info --json " + quote(odd.string()));
    ASSERT_EQ(odd_json.code, 0) << odd_json.err;
    const nlohmann::json parsed = nlohmann::json::parse(odd_json.out, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << odd_json.out;
    EXPECT_EQ(parsed["bundle"], (root() / "b \"\t\xef\xbf\xbd.zip").string());
    EXPECT_EQ(parsed["version"], "1.2.3");
    ASSERT_EQ(parsed["members"].size(), 2u) << odd_json.out;
    EXPECT_EQ(parsed["members"][1]["name"], "verity_rootfs.img");
    EXPECT_EQ(parsed["members"][1]["size"], 2097152);

    // verify: a key directory without this key; a wrong compatible string; a plain zip.
    fs::create_directories(work() / "other-keys");
    ASSERT_EQ(run_activate("bundle keygen -o " + quote((work() / "other-keys/x").string())).code,
              0);
    fs::remove(work() / "other-keys/x.secret");
    Outcome unknown =
        run_activate("bundle verify --keys " + quote((work() / "other-keys").string()) + " " + b);
    EXPECT_EQ(unknown.code, 8) << unknown.err;
    EXPECT_NE(unknown.err.find("signed by unknown key"), std::string::npos) << unknown.err;
    Outcome wrong =
        run_activate("bundle verify --keys " + quote((root() / "etc/activate/keys").string()) +
                     " --compatible board-9 " + b);
    EXPECT_EQ(wrong.code, 8);
    EXPECT_NE(wrong.err.find("(--compatible)"), std::string::npos) << wrong.err;
    Outcome not_a_bundle = run_activate("bundle info " + quote((work() / "release.pub").string()));
    EXPECT_EQ(not_a_bundle.code, 5) << not_a_bundle.err;

    // Usage errors exit 2 and print nothing on stdout.
    for (const std::string& args :
         {std::string("bundle"), std::string("bundle frob"), std::string("bundle create -o x.zip"),
          std::string("bundle verify " + b),
          std::string("bundle create --key k --compatible c "
                      "--version 01 -o x.zip f")}) {
        Outcome r = run_activate(args);
        EXPECT_EQ(r.code, 2) << args << ": " << r.err;
        EXPECT_EQ(r.out, "") << args;
    }
    Outcome help = run_activate("bundle --help");
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("keygen"), std::string::npos);
    EXPECT_NE(run_activate("--help").out.find("bundle keygen|create|verify|info"),
              std::string::npos);
}

}  // namespace
}  // namespace activate::uki
