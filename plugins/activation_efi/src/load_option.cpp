// EFI_LOAD_OPTION encode/decode (UEFI 2.10 §3.1.3).
#include <activate/byte_order.hpp>
#include <activate/utf16.hpp>
#include <activation_efi/load_option.hpp>

namespace activate::efi {

namespace {
constexpr size_t kFixedSize = 6;  // u32 Attributes, u16 FilePathListLength
}

std::string LoadOption::description_utf8() const { return utf16_to_utf8(description); }

Result<LoadOption> decode_load_option(std::string_view bytes) {
    if (bytes.size() < kFixedSize)
        return Error(ErrorKind::input, "load option is " + std::to_string(bytes.size()) +
                                           " bytes, shorter than its 6-byte header");
    LoadOption option;
    option.attributes = load_le32(bytes, 0);
    const uint16_t path_length = load_le16(bytes, 4);

    size_t at = kFixedSize;
    size_t end_of_description = std::string_view::npos;
    for (; at + 1 < bytes.size(); at += 2) {
        if (bytes[at] == 0 && bytes[at + 1] == 0) {
            end_of_description = at;
            break;
        }
    }
    if (end_of_description == std::string_view::npos)
        return Error(ErrorKind::input, "load option description has no NUL terminator");
    option.description =
        utf16_from_le_bytes(bytes.substr(kFixedSize, end_of_description - kFixedSize));
    at = end_of_description + 2;

    if (path_length > bytes.size() - at)
        return Error(ErrorKind::input,
                     "load option FilePathListLength " + std::to_string(path_length) +
                         " exceeds the " + std::to_string(bytes.size() - at) +
                         " bytes after the description (at byte " + std::to_string(at) + ")");
    auto path = decode_device_path(bytes.substr(at, path_length));
    if (!path.ok())
        return std::move(path).error().with_context("load option device path at byte " +
                                                    std::to_string(at));
    option.file_path = std::move(path).value();
    option.optional_data = std::string(bytes.substr(at + path_length));
    return option;
}

Result<std::string> encode_load_option(const LoadOption& option) {
    const std::string path = encode_device_path(option.file_path);
    if (path.size() > 0xFFFF)
        return Error(ErrorKind::input, "device path list of " + std::to_string(path.size()) +
                                           " bytes does not fit FilePathListLength (u16)");
    std::string out;
    append_le32(out, option.attributes);
    append_le16(out, static_cast<uint16_t>(path.size()));
    out += utf16_to_le_bytes(option.description);
    append_le16(out, 0);
    out += path;
    out += option.optional_data;
    return out;
}

}  // namespace activate::efi
