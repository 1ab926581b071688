// BundleReader against Info-ZIP's zip (stored, deflated, piped with data descriptors),
// hand-built edge cases, corruptions that must each fail with a clear message, zip64 through a
// pipe, and the memory bound while streaming a large member.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <zlib.h>

#include <activate/bundle/reader.hpp>
#include <activate/bundle/writer.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "test_util.hpp"
#include "zip_format.hpp"

namespace activate::bundle::test {
namespace {

// ----- helpers -----

std::string deflate_raw(const std::string& data) {
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, uLong(data.size())) + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = uInt(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = uInt(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

// A member for build_zip(): the fields a hand-made archive varies.
struct Raw {
    std::string name;
    std::string data;  // uncompressed
    uint16_t method = kMethodStored;
    uint16_t flags = 0;
    bool sizes_in_local = true;  // with bit 3: put real sizes into the local header anyway
    bool descriptor_sig = true;
    bool local_zip64 = false;  // local sizes 0xffffffff (or 0 with bit 3) + zip64 extra
    std::optional<uint64_t> claimed_size =
        std::nullopt;  // overrides the uncompressed size in the local header
};

// `zip64_end`: add the zip64 end record and locator and saturate the end record's fields
// (APPNOTE 4.4.1.4 allows zip64 records for any archive).
std::string build_zip(const std::vector<Raw>& members, bool zip64_end = false) {
    std::string out, cd;
    for (const Raw& m : members) {
        const std::string payload = m.method == kMethodDeflated ? deflate_raw(m.data) : m.data;
        const uint32_t crc = update_crc32(0, as_bytes(m.data));
        const bool dd = m.flags & zip::kFlagDataDescriptor;
        const uint64_t usize = m.claimed_size.value_or(m.data.size());
        const uint64_t offset = out.size();
        std::string extra;
        if (m.local_zip64) {
            append_le16(extra, zip::kZip64ExtraId);
            append_le16(extra, 16);
            append_le64(extra, dd && !m.sizes_in_local ? 0 : usize);
            append_le64(extra, dd && !m.sizes_in_local ? 0 : payload.size());
        }
        append_le32(out, zip::kLocalHeaderSig);
        append_le16(out, 20);
        append_le16(out, m.flags);
        append_le16(out, m.method);
        append_le32(out, 0);  // time, date
        append_le32(out, dd ? 0 : crc);
        const bool sized = !dd || m.sizes_in_local;
        append_le32(out, m.local_zip64 ? (dd ? 0 : zip::kSaturated32)
                         : sized       ? uint32_t(payload.size())
                                       : 0);
        append_le32(out, m.local_zip64 ? (dd ? 0 : zip::kSaturated32)
                         : sized       ? uint32_t(usize)
                                       : 0);
        append_le16(out, uint16_t(m.name.size()));
        append_le16(out, uint16_t(extra.size()));
        out += m.name + extra + payload;
        if (dd) {
            if (m.descriptor_sig) append_le32(out, zip::kDataDescriptorSig);
            append_le32(out, crc);
            if (m.local_zip64) {
                append_le64(out, payload.size());
                append_le64(out, m.data.size());
            } else {
                append_le32(out, uint32_t(payload.size()));
                append_le32(out, uint32_t(m.data.size()));
            }
        }
        append_le32(cd, zip::kCentralHeaderSig);
        append_le16(cd, 0x031e);
        append_le16(cd, 20);
        append_le16(cd, m.flags);
        append_le16(cd, m.method);
        append_le32(cd, 0);
        append_le32(cd, crc);
        append_le32(cd, uint32_t(payload.size()));
        append_le32(cd, uint32_t(m.data.size()));
        append_le16(cd, uint16_t(m.name.size()));
        append_le16(cd, 0);
        append_le16(cd, 0);
        append_le16(cd, 0);
        append_le16(cd, 0);
        append_le32(cd, 0);
        append_le32(cd, uint32_t(offset));
        cd += m.name;
    }
    const uint64_t cd_offset = out.size();
    out += cd;
    if (zip64_end) {
        const uint64_t record = out.size();
        append_le32(out, zip::kZip64EndSig);
        append_le64(out, 44);
        append_le16(out, 45);
        append_le16(out, 45);
        append_le32(out, 0);
        append_le32(out, 0);
        append_le64(out, members.size());
        append_le64(out, members.size());
        append_le64(out, cd.size());
        append_le64(out, cd_offset);
        append_le32(out, zip::kZip64LocatorSig);
        append_le32(out, 0);
        append_le64(out, record);
        append_le32(out, 1);
    }
    append_le32(out, zip::kEndSig);
    append_le16(out, 0);
    append_le16(out, 0);
    append_le16(out, zip64_end ? 0xffff : uint16_t(members.size()));
    append_le16(out, zip64_end ? 0xffff : uint16_t(members.size()));
    append_le32(out, zip64_end ? 0xffffffff : uint32_t(cd.size()));
    append_le32(out, zip64_end ? 0xffffffff : uint32_t(cd_offset));
    append_le16(out, 0);
    return out;
}

std::string bundle_of(const std::vector<std::pair<std::string, std::string>>& members) {
    std::string out;
    BundleWriter w(string_sink(&out));
    for (const auto& [name, data] : members) EXPECT_TRUE(w.add_member(name, as_bytes(data)).ok());
    EXPECT_TRUE(w.finish().ok());
    return out;
}

// Replaces every occurrence (local header and central directory alike).
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    EXPECT_EQ(from.size(), to.size());
    size_t pos = 0;
    int n = 0;
    while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
        ++n;
    }
    EXPECT_GT(n, 0) << from;
    return s;
}

// Expects reading the whole bundle to fail with `needle` in the message.
void expect_error(const std::string& zip, const std::string& needle) {
    auto r = read_all(zip);
    ASSERT_FALSE(r.ok()) << "expected an error containing \"" << needle << "\"";
    EXPECT_EQ(r.error().kind(), ErrorKind::input) << r.error().message();
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

// ----- archives made by Info-ZIP's zip -----

class ZipTool : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!have_program("zip")) GTEST_SKIP() << "Info-ZIP zip not installed";
        bin_ = random_bytes(300000, 7);
        text_.clear();
        for (int i = 0; i < 20000; ++i) text_ += "line " + std::to_string(i % 97) + " of text\n";
        write_whole(dir_ / "a.bin", bin_);
        write_whole(dir_ / "text.txt", text_);
        write_whole(dir_ / "empty", "");
        std::filesystem::create_directory(dir_ / "sub");
        write_whole(dir_ / "sub/x", "x in sub\n");
    }

    // Runs `zip <args>` in the directory (a shell command line); returns the archive bytes.
    std::string zip(const std::string& command, const std::string& out) {
        const std::string cmd = "cd " + dir_.path().string() + " && " + command;
        EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
        return read_whole(dir_ / out);
    }

    void expect_members(const std::vector<ReadMember>& got, bool descriptors) {
        std::map<std::string, const ReadMember*> by_name;
        for (const auto& m : got) by_name[m.header.name] = &m;
        ASSERT_EQ(by_name.size(), 5u);
        ASSERT_TRUE(by_name.count("sub/"));
        EXPECT_TRUE(by_name["sub/"]->header.is_directory());
        EXPECT_EQ(by_name["a.bin"]->data, bin_);
        EXPECT_EQ(by_name["text.txt"]->data, text_);
        EXPECT_EQ(by_name["empty"]->data, "");
        EXPECT_EQ(by_name["sub/x"]->data, "x in sub\n");
        EXPECT_EQ(by_name["a.bin"]->header.data_descriptor, descriptors);
    }

    TempDir dir_;
    std::string bin_, text_;
};

TEST_F(ZipTool, Stored) {
    const std::string z = zip("zip -q -r -0 out.zip a.bin text.txt empty sub", "out.zip");
    auto r = read_all(z);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expect_members(*r, false);
    for (const auto& m : *r) {
        EXPECT_EQ(m.header.method, kMethodStored);
        EXPECT_EQ(m.header.size, m.data.size());
    }
}

TEST_F(ZipTool, Deflated) {
    const std::string z = zip("zip -q -r -9 out.zip a.bin text.txt empty sub", "out.zip");
    auto r = read_all(z);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expect_members(*r, false);
    bool saw_deflate = false;
    for (const auto& m : *r) {
        saw_deflate |= m.header.method == kMethodDeflated;
        EXPECT_EQ(m.header.size, m.data.size()) << m.header.name;
    }
    EXPECT_TRUE(saw_deflate);
}

TEST_F(ZipTool, PipedDeflatedUsesDataDescriptors) {
    // Writing to a pipe, zip cannot seek back, so it sets bit 3 and appends data descriptors.
    const std::string z = zip("zip -q -r -9 - a.bin text.txt empty sub | cat > out.zip", "out.zip");
    auto r = read_all(z);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expect_members(*r, true);
}

TEST_F(ZipTool, PipedStoredUsesDataDescriptorsWithSizes) {
    const std::string z = zip("zip -q -r -0 - a.bin text.txt empty sub | cat > out.zip", "out.zip");
    auto r = read_all(z);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expect_members(*r, true);
    for (const auto& m : *r) EXPECT_EQ(m.header.size, m.data.size()) << m.header.name;
}

TEST_F(ZipTool, FromStdinSizeIsUnknownUntilTheEnd) {
    // Input from a pipe too: zip knows no size at all, writes a zip64 extra with zeros and a
    // zip64 data descriptor (APPNOTE 4.3.9.2).
    const std::string z = zip("cat text.txt | zip -q - - | cat > out.zip", "out.zip");
    auto r = read_all(z);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].header.name, "-");
    EXPECT_FALSE((*r)[0].header.size.has_value());
    EXPECT_TRUE((*r)[0].header.data_descriptor);
    EXPECT_EQ((*r)[0].data, text_);
}

TEST_F(ZipTool, CorruptDeflateDataIsAnError) {
    std::string z = zip("zip -q -9 out.zip text.txt", "out.zip");
    z[z.size() / 3] ^= 0x55;  // inside the compressed data
    auto r = read_all(z);
    ASSERT_FALSE(r.ok());
    const std::string& msg = r.error().message();
    EXPECT_TRUE(msg.find("deflate") != std::string::npos || msg.find("CRC-32") != std::string::npos)
        << msg;
    EXPECT_NE(msg.find("text.txt"), std::string::npos) << msg;
}

// ----- the fuzz seeds: zips from Info-ZIP and Python's zipfile (zip64 extras, streamed
// deflate with descriptors) must all read cleanly -----

TEST(BundleReader, FuzzSeedsAreValidBundles) {
    const std::filesystem::path dir =
        std::filesystem::path(BUNDLE_TEST_DIR) / "../fuzz/corpus/bundle_reader_fuzz";
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string z = read_whole(entry.path());
        auto r = read_all(z);
        EXPECT_TRUE(r.ok()) << entry.path() << ": " << r.error().message();
        if (r.ok()) {
            EXPECT_FALSE(r->empty()) << entry.path();
        }
        ++n;
    }
    EXPECT_GE(n, 5);
}

// ----- hand-built archives: the data descriptor rules -----

TEST(BundleReader, StoredWithDescriptorAndNoSizeIsAClearError) {
    const std::string z = build_zip({Raw{.name = "img",
                                         .data = "hello world",
                                         .flags = zip::kFlagDataDescriptor,
                                         .sizes_in_local = false}});
    expect_error(z, "cannot be delimited");
}

TEST(BundleReader, EmptyStoredMemberWithDescriptorIsFine) {
    auto r = read_all(build_zip({Raw{.name = "empty",
                                     .data = "",
                                     .flags = zip::kFlagDataDescriptor,
                                     .sizes_in_local = false},
                                 Raw{.name = "next", .data = "n"}}));
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[1].data, "n");
}

TEST(BundleReader, DeflatedWithUnsignedDescriptor) {
    const std::string data = random_bytes(5000, 9) + std::string(20000, 'z');
    auto r = read_all(build_zip({Raw{.name = "d",
                                     .data = data,
                                     .method = kMethodDeflated,
                                     .flags = zip::kFlagDataDescriptor,
                                     .sizes_in_local = false,
                                     .descriptor_sig = false}}));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_FALSE((*r)[0].header.size.has_value());
    EXPECT_FALSE((*r)[0].header.crc32.has_value());
    EXPECT_EQ((*r)[0].data, data);
}

TEST(BundleReader, Zip64LocalExtraForASmallMember) {
    // APPNOTE 4.4.1.4 / 4.5.3: zip64 fields may be used for any size.
    auto r = read_all(build_zip({Raw{.name = "s", .data = "small", .local_zip64 = true}}));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ((*r)[0].header.size, 5u);
    EXPECT_EQ((*r)[0].data, "small");
}

TEST(BundleReader, Zip64EndRecordsForASmallArchive) {
    const std::vector<Raw> members = {Raw{.name = "a", .data = "one"},
                                      Raw{.name = "b", .data = "two"}};
    auto r = read_all(build_zip(members, true));
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[1].data, "two");

    // Each field of the zip64 end record and locator is checked.
    const std::string good = build_zip(members, true);
    const size_t rec = good.find(std::string("PK\x06\x06", 4));
    ASSERT_NE(rec, std::string::npos);
    auto corrupt = [&](size_t at, size_t also = 0) {
        std::string z = good;
        z[at] ^= 1;
        if (also) z[also] ^= 1;
        return z;
    };
    expect_error(corrupt(rec + 24, rec + 32), "counts");              // both entry counts
    expect_error(corrupt(rec + 40), "central directory size");        // size of the directory
    expect_error(corrupt(rec + 48), "places the central directory");  // its offset
    expect_error(corrupt(rec + 56 + 8), "zip64 locator points at");   // locator's record offset
    expect_error(corrupt(rec + 16), "multi-disk");
}

TEST(BundleReader, SaturatedSizeWithoutZip64ExtraIsAnError) {
    std::string z = build_zip({Raw{.name = "s", .data = "small"}});
    // Local header uncompressed size (offset 22) saturated, no extra field.
    z.replace(22, 4, std::string(4, '\xff'));
    expect_error(z, "no zip64 extra field");
}

TEST(BundleReader, DescriptorSizesMustMatchTheData) {
    std::string z = build_zip({Raw{.name = "d",
                                   .data = "abcdef",
                                   .method = kMethodDeflated,
                                   .flags = zip::kFlagDataDescriptor,
                                   .sizes_in_local = false}});
    // Descriptor: signature, crc, csize, usize: bump usize.
    const size_t desc = z.find(std::string("PK\x07\x08", 4));
    ASSERT_NE(desc, std::string::npos);
    z[desc + 12] = char(z[desc + 12] + 1);
    expect_error(z, "data descriptor sizes");
}

TEST(BundleReader, MoreDataThanTheHeaderStatesIsAnError) {
    expect_error(build_zip({Raw{.name = "d",
                                .data = std::string(10000, 'a'),
                                .method = kMethodDeflated,
                                .claimed_size = 100}}),
                 "more than the 100 bytes");
}

TEST(BundleReader, EncryptedMembersAreRefused) {
    expect_error(build_zip({Raw{.name = "e", .data = "secret", .flags = zip::kFlagEncrypted}}),
                 "encrypted");
}

TEST(BundleReader, UnknownMethodIsRefused) {
    expect_error(build_zip({Raw{.name = "b", .data = "x", .method = 12}}), "compression method 12");
}

// ----- corruptions of writer output -----

TEST(BundleReader, CorruptedDataFailsTheCrc) {
    std::string z = bundle_of({{"a", "first"}, {"img", std::string(1000, 'q')}});
    const size_t pos = z.find(std::string(1000, 'q'));
    z[pos + 500] = 'r';
    expect_error(z, "CRC-32 mismatch");
    // The message names the member.
    auto r = read_all(z);
    EXPECT_NE(r.error().message().find("\"img\""), std::string::npos) << r.error().message();
}

TEST(BundleReader, EveryTruncationIsAnError) {
    const std::string z = bundle_of({{"a", "first member"}, {"dir/", ""}, {"b", "second"}});
    for (size_t len = 0; len < z.size(); ++len) {
        auto r = read_all(z.substr(0, len));
        ASSERT_FALSE(r.ok()) << "prefix of " << len << " of " << z.size() << " bytes was accepted";
        EXPECT_EQ(r.error().kind(), ErrorKind::input);
    }
    EXPECT_TRUE(read_all(z).ok());
}

TEST(BundleReader, TruncatedInsideDataSaysIncomplete) {
    const std::string z = bundle_of({{"img", std::string(5000, 'x')}});
    expect_error(z.substr(0, 2000), "truncated at byte 2000");
}

TEST(BundleReader, MissingCentralDirectorySaysSo) {
    const std::string z = bundle_of({{"img", std::string(50, 'x')}});
    expect_error(z.substr(0, 30 + 3 + 50), "without a central directory");
}

TEST(BundleReader, BadLocalHeaderSignature) {
    std::string z = bundle_of({{"a", "x"}});
    z[0] = 'X';
    expect_error(z, "bad signature");
    expect_error("not a zip file at all", "not a zip bundle");
}

TEST(BundleReader, DotDotNamesAreRefused) {
    expect_error(replace_all(bundle_of({{"xx/passwd", "x"}}), "xx/passwd", "../passwd"),
                 "\"..\" component");
}

TEST(BundleReader, AbsoluteNamesAreRefused) {
    expect_error(replace_all(bundle_of({{"xetc/passwd", "x"}}), "xetc/passwd", "/etc/passwd"),
                 "is absolute");
}

TEST(BundleReader, DuplicateNamesAreRefused) {
    expect_error(replace_all(bundle_of({{"img1", "x"}, {"img2", "y"}}), "img2", "img1"),
                 "appears twice");
}

TEST(BundleReader, CentralDirectoryMustAgreeWithLocalHeaders) {
    std::string z = bundle_of({{"a", "data"}});
    const uint32_t crc = update_crc32(0, as_bytes("data"));
    std::string crc_bytes;
    append_le32(crc_bytes, crc);
    const size_t cd = z.find(std::string("PK\x01\x02", 4));
    ASSERT_NE(cd, std::string::npos);
    ASSERT_EQ(z.substr(cd + 16, 4), crc_bytes);
    z[cd + 16] ^= 1;
    expect_error(z, "disagrees with the member streamed: the CRC-32");
}

TEST(BundleReader, TrailingDataIsRefused) {
    expect_error(bundle_of({{"a", "x"}}) + "junk", "unexpected data after the end");
}

TEST(BundleReader, EmptyBundleIsValid) {
    auto r = read_all(bundle_of({}));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_TRUE(r->empty());
}

// ----- API behaviour -----

TEST(BundleReader, SkipCopyToAndNextConsumeMembers) {
    const std::string big = random_bytes(1 << 20, 11);
    const std::string z =
        bundle_of({{"skipped", big}, {"copied", big}, {"ignored", "x"}, {"z", "z"}});
    auto reader = BundleReader::open(memory_source(as_bytes(z)));
    ASSERT_TRUE(reader.ok());
    auto h = reader->next();
    ASSERT_TRUE(h.ok() && *h);
    ASSERT_TRUE(reader->skip().ok());
    h = reader->next();
    ASSERT_TRUE(h.ok() && *h);
    EXPECT_EQ((*h)->name, "copied");
    std::string copy;
    auto n = reader->copy_to([&](std::span<const uint8_t> chunk) {
        copy.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        return Status();
    });
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, big.size());
    EXPECT_EQ(copy, big);
    h = reader->next();  // "ignored": never read; next() consumes and verifies it
    ASSERT_TRUE(h.ok() && *h);
    h = reader->next();
    ASSERT_TRUE(h.ok() && *h);
    EXPECT_EQ((*h)->name, "z");
    h = reader->next();
    ASSERT_TRUE(h.ok());
    EXPECT_FALSE(*h);
    EXPECT_EQ(reader->source_offset(), z.size());
    h = reader->next();  // stays at the end
    ASSERT_TRUE(h.ok());
    EXPECT_FALSE(*h);
}

TEST(BundleReader, CopyToStopsAtTheSinksError) {
    const std::string z = bundle_of({{"img", std::string(1 << 20, 'a')}});
    auto reader = BundleReader::open(memory_source(as_bytes(z)));
    ASSERT_TRUE(reader.ok());
    ASSERT_TRUE(reader->next().ok());
    auto n = reader->copy_to(
        [](std::span<const uint8_t>) { return Status(Error(ErrorKind::activation, "disk full")); });
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().message(), "disk full");
}

TEST(BundleReader, ReadBeforeNextAndUseAfterErrorFail) {
    const std::string bad = "garbage";
    auto reader = BundleReader::open(memory_source(as_bytes(bad)));
    ASSERT_TRUE(reader.ok());
    uint8_t buf[8];
    EXPECT_FALSE(reader->read(buf).ok());
    EXPECT_FALSE(reader->next().ok());
    auto again = reader->next();
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message().find("earlier error"), std::string::npos);
}

TEST(BundleReader, MemberBytesArriveOnlyAfterVerificationOfTheirEnd) {
    // The last chunk of a corrupt member is never delivered: read() fails instead.
    std::string z = bundle_of({{"a", "0123456789"}});
    z[z.find("0123456789") + 9] = 'X';
    auto reader = BundleReader::open(memory_source(as_bytes(z)));
    ASSERT_TRUE(reader.ok());
    ASSERT_TRUE(reader->next().ok());
    uint8_t buf[64];
    EXPECT_FALSE(reader->read(buf).ok());
}

// ----- large members through a pipe: zip64 and the memory bound -----

// Streams a bundle holding `size` zero bytes as "big" plus a small member "after" into a pipe
// from a writer thread; the reader end is source().
class ZeroBundlePipe {
  public:
    explicit ZeroBundlePipe(uint64_t size) {
        ::signal(SIGPIPE, SIG_IGN);  // a reader that gives up must not kill the test
        int fds[2];
        EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        read_end_ = UniqueFd(fds[0]);
        UniqueFd write_end(fds[1]);
        thread_ = std::thread([this, size, fd = std::move(write_end)]() mutable {
            BundleWriter w(fd_sink(std::move(fd), "pipe"));
            status_ = [&]() -> Status {
                ACTIVATE_TRY(w.begin_member("big", size, crc32_of_zeros(size)));
                std::vector<uint8_t> zeros(1 << 20);
                for (uint64_t left = size; left > 0;) {
                    const size_t n = size_t(std::min<uint64_t>(left, zeros.size()));
                    ACTIVATE_TRY(w.write(std::span<const uint8_t>(zeros.data(), n)));
                    left -= n;
                }
                ACTIVATE_TRY(w.end_member());
                ACTIVATE_TRY(w.add_member("after", as_bytes("tail")));
                return w.finish();
            }();
        });
    }
    ~ZeroBundlePipe() { (void)join(); }

    std::unique_ptr<ByteSource> source() { return fd_source(std::move(read_end_), "pipe"); }
    Status join() {
        if (thread_.joinable()) thread_.join();
        return status_;
    }

  private:
    UniqueFd read_end_;
    std::thread thread_;
    Status status_;
};

long max_rss_kib() {
    struct rusage ru;
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

void stream_zero_bundle(uint64_t size, long* rss_growth_kib) {
    ZeroBundlePipe pipe(size);
    const long before = max_rss_kib();
    {
        auto reader = BundleReader::open(pipe.source());
        ASSERT_TRUE(reader.ok());
        auto h = reader->next();
        ASSERT_TRUE(h.ok()) << h.error().message();
        ASSERT_TRUE(*h);
        EXPECT_EQ((*h)->name, "big");
        EXPECT_EQ((*h)->size, size);  // known before the data, zip64 or not
        uint64_t nonzero = 0;
        auto n = reader->copy_to([&](std::span<const uint8_t> chunk) {
            for (size_t i = 0; i < chunk.size(); i += 4096) nonzero += chunk[i] != 0;
            return Status();
        });
        ASSERT_TRUE(n.ok()) << n.error().message();
        EXPECT_EQ(*n, size);
        EXPECT_EQ(nonzero, 0u);
        h = reader->next();
        ASSERT_TRUE(h.ok()) << h.error().message();
        ASSERT_TRUE(*h);
        EXPECT_EQ((*h)->name, "after");
        h = reader->next();
        ASSERT_TRUE(h.ok()) << h.error().message();
        EXPECT_FALSE(*h);
    }
    *rss_growth_kib = max_rss_kib() - before;
    auto st = pipe.join();
    EXPECT_TRUE(st.ok()) << st.error().message();
}

TEST(BundleReader, StreamingLargeMemberKeepsMemoryBounded) {
    long growth = 0;
    stream_zero_bundle(256ull << 20, &growth);
    // 256 MiB went through; reader and writer hold about 1.5 MiB of buffers.
    EXPECT_LT(growth, 32 * 1024) << "peak RSS grew by " << growth << " KiB";
}

// Keeps what BundleWriter emits except a run of `hole` bytes starting at `hole_start` (the data
// of a zero-filled member), so a multi-GiB bundle costs no memory or disk.
class HoleSink final : public ByteSink {
  public:
    HoleSink(std::string* kept, uint64_t hole_start, uint64_t hole)
        : kept_(kept), start_(hole_start), end_(hole_start + hole) {}
    Status write(std::span<const uint8_t> data) override {
        for (size_t i = 0; i < data.size();) {
            if (pos_ >= start_ && pos_ < end_) {
                const size_t n = size_t(std::min<uint64_t>(data.size() - i, end_ - pos_));
                for (size_t k = 0; k < n; k += 4096) {
                    if (data[i + k] != 0) return Error(ErrorKind::internal, "hole not zero");
                }
                i += n;
                pos_ += n;
            } else {
                const uint64_t limit = pos_ < start_ ? start_ : UINT64_MAX;
                const size_t n = size_t(std::min<uint64_t>(data.size() - i, limit - pos_));
                kept_->append(reinterpret_cast<const char*>(data.data() + i), n);
                i += n;
                pos_ += n;
            }
        }
        return {};
    }
    const std::string& name() const override { return name_; }

  private:
    std::string* kept_;
    uint64_t start_, end_, pos_ = 0;
    std::string name_ = "hole-sink";
};

// Plays back HoleSink's bytes with the hole filled by zeros.
class HoleSource final : public ByteSource {
  public:
    HoleSource(const std::string* kept, uint64_t hole_start, uint64_t hole)
        : kept_(kept), start_(hole_start), end_(hole_start + hole) {}
    Result<size_t> read(std::span<uint8_t> out) override {
        const uint64_t total = kept_->size() + (end_ - start_);
        if (pos_ >= total || out.empty()) return size_t(0);
        size_t n;
        if (pos_ < start_) {
            n = size_t(std::min<uint64_t>(out.size(), start_ - pos_));
            std::memcpy(out.data(), kept_->data() + pos_, n);
        } else if (pos_ < end_) {
            n = size_t(std::min<uint64_t>(out.size(), end_ - pos_));
            std::memset(out.data(), 0, n);
        } else {
            n = size_t(std::min<uint64_t>(out.size(), total - pos_));
            std::memcpy(out.data(), kept_->data() + (pos_ - (end_ - start_)), n);
        }
        pos_ += n;
        return n;
    }
    const std::string& name() const override { return name_; }

  private:
    const std::string* kept_;
    uint64_t start_, end_, pos_ = 0;
    std::string name_ = "zip64.zip";
};

// A source without a skip of its own reads through; one that ends before the point to skip to
// is an incomplete bundle (a delta install skips over a truncated download this way).
TEST(ByteSourceSkip, PastTheEndIsAnIncompleteBundle) {
    const std::string kept = "abc";
    HoleSource source(&kept, 3, 0);
    ASSERT_TRUE(source.skip(2).ok());
    auto st = source.skip(10);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind(), ErrorKind::input);
    EXPECT_NE(st.error().message().find("ends 9 bytes before the point to skip to; the bundle is "
                                        "incomplete"),
              std::string::npos)
        << st.error().message();
}

TEST(BundleReader, Zip64MemberAndOffsetsBeyond4GiB) {
    // 4 GiB + 1 zero bytes written by BundleWriter and read back: the local header needs the
    // zip64 extra field, the member after it a zip64 offset in the central directory, and the
    // end the zip64 end record and locator. No disk or memory is used for the data; the cost is
    // two CRC-32 passes over 4 GiB (a few seconds).
    const uint64_t size = (4ull << 30) + 1;
    const uint64_t data_start = zip::kLocalHeaderSize + 3 + 20;  // "big" + zip64 extra
    std::string kept;
    {
        BundleWriter w(std::make_unique<HoleSink>(&kept, data_start, size));
        ASSERT_TRUE(w.begin_member("big", size, crc32_of_zeros(size)).ok());
        std::vector<uint8_t> zeros(4 << 20);
        for (uint64_t left = size; left > 0;) {
            const size_t n = size_t(std::min<uint64_t>(left, zeros.size()));
            ASSERT_TRUE(w.write(std::span<const uint8_t>(zeros.data(), n)).ok());
            left -= n;
        }
        ASSERT_TRUE(w.end_member().ok());
        ASSERT_TRUE(w.add_member("after", as_bytes("tail")).ok());
        ASSERT_TRUE(w.finish().ok());
        EXPECT_EQ(w.bytes_written(), kept.size() + size);
    }
    // The records that only exist beyond 4 GiB are there.
    EXPECT_NE(kept.find(std::string("PK\x06\x06", 4)), std::string::npos);
    EXPECT_NE(kept.find(std::string("PK\x06\x07", 4)), std::string::npos);

    auto reader = BundleReader::open(std::make_unique<HoleSource>(&kept, data_start, size));
    ASSERT_TRUE(reader.ok());
    auto h = reader->next();
    ASSERT_TRUE(h.ok()) << h.error().message();
    ASSERT_TRUE(*h);
    EXPECT_EQ((*h)->name, "big");
    EXPECT_EQ((*h)->size, size);  // known before the data
    auto n = reader->copy_to([](std::span<const uint8_t>) { return Status(); });
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, size);
    h = reader->next();
    ASSERT_TRUE(h.ok()) << h.error().message();
    ASSERT_TRUE(*h);
    EXPECT_EQ((*h)->name, "after");
    std::string tail(8, '\0');
    auto t = reader->read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(tail.data()), tail.size()));
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(tail.substr(0, *t), "tail");
    h = reader->next();
    ASSERT_TRUE(h.ok()) << h.error().message();
    EXPECT_FALSE(*h);
}

}  // namespace
}  // namespace activate::bundle::test
