// Fuzzes the manifest decoder over arbitrary bytes: it must return errors, never crash; what it
// accepts must survive encode -> decode unchanged (the encoding is what gets signed), with one
// digest per chunk, and version comparison must be a total order consistent with equality.
#include <activate/bundle/manifest.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace activate::bundle;
    auto manifest = parse_manifest(std::span<const uint8_t>(data, size));
    if (manifest.ok()) {
        auto encoded = encode_manifest(*manifest);
        check(encoded.ok());
        auto again = parse_manifest(std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(encoded->data()), encoded->size()));
        check(again.ok());
        check(again->compatible == manifest->compatible);
        check(again->version.text() == manifest->version.text());
        check(again->signing_key == manifest->signing_key);
        check(again->members.size() == manifest->members.size());
        for (size_t i = 0; i < manifest->members.size(); ++i) {
            check(again->members[i].name == manifest->members[i].name);
            check(again->members[i].size == manifest->members[i].size);
            check(again->members[i].chunk_size == manifest->members[i].chunk_size);
            check(again->members[i].chunks == manifest->members[i].chunks);
            check(manifest->members[i].chunks.size() == manifest->members[i].chunk_count());
            check(manifest->find(manifest->members[i].name) != nullptr);
        }
    }
    // Two versions from the input, split at the first NUL.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const size_t cut = text.find('\0');
    auto a = BundleVersion::parse(text.substr(0, cut));
    auto b = BundleVersion::parse(cut == std::string_view::npos ? text : text.substr(cut + 1));
    if (a.ok() && b.ok()) {
        check((*a <=> *a) == 0);
        check((*a < *b) == (*b > *a));
        check((*a == *b) == (*b == *a));
        if (a->text() == b->text()) check(*a == *b);
    }
    return 0;
}
