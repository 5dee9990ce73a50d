// A bounds-checked reader of the small flexbuffer map holding AdderConv2D's options.
//
// Flexbuffer layout (google/flatbuffers, "FlexBuffers"): the buffer ends with the root value,
// its packed type byte (type << 2 | log2 width) and the root's byte width. A map's data offset
// points at its values (one per key, `width` bytes each), followed by one packed type byte per
// value; before the values sit the keys vector's offset, the keys' byte width and the count.
// Offsets are unsigned distances backwards from where they are stored. Every read below is
// checked against [0, size).
#include "adder_options.h"

#include <algorithm>
#include <cstring>

namespace pkkd {
namespace {

enum FlexType : int {
  kInt = 1,
  kUInt = 2,
  kKey = 4,
  kString = 5,
  kIndirectInt = 6,
  kIndirectUInt = 7,
  kMap = 9,
};

constexpr size_t kMaxEntries = 64;      // far more than the format has keys
constexpr size_t kMaxStringLength = 64;  // keys and the padding string

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool ValidWidth(uint64_t w) const { return w == 1 || w == 2 || w == 4 || w == 8; }

  // Unsigned little-endian integer of `width` bytes at `pos`.
  bool ReadUInt(size_t pos, size_t width, uint64_t* out) const {
    if (!ValidWidth(width) || pos > size_ || width > size_ - pos) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(data_[pos + i]) << (8 * i);
    *out = v;
    return true;
  }

  bool ReadInt(size_t pos, size_t width, int64_t* out) const {
    uint64_t u;
    if (!ReadUInt(pos, width, &u)) return false;
    if (width < 8 && (u >> (8 * width - 1)) & 1) u |= ~uint64_t{0} << (8 * width);  // sign
    *out = static_cast<int64_t>(u);
    return true;
  }

  // The position an offset stored at `pos` points to (backwards).
  bool Indirect(size_t pos, size_t width, size_t* out) const {
    uint64_t off;
    if (!ReadUInt(pos, width, &off) || off > pos) return false;
    *out = pos - static_cast<size_t>(off);
    return true;
  }

  // A NUL-terminated string starting at `pos`, at most kMaxStringLength bytes.
  bool CString(size_t pos, std::string* out) const {
    if (pos >= size_) return false;
    const size_t limit = std::min(size_ - pos, kMaxStringLength + 1);
    const void* nul = std::memchr(data_ + pos, 0, limit);
    if (nul == nullptr) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos),
                static_cast<const uint8_t*>(nul) - (data_ + pos));
    return true;
  }

  // A sized string (FBT_STRING) whose data starts at `pos`; its length sits just before.
  bool SizedString(size_t pos, size_t width, std::string* out) const {
    uint64_t len;
    if (pos < width || !ReadUInt(pos - width, width, &len)) return false;
    if (len > kMaxStringLength || pos > size_ || len > size_ - pos) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos), static_cast<size_t>(len));
    return true;
  }

  size_t size() const { return size_; }
  uint8_t byte(size_t pos) const { return data_[pos]; }

 private:
  const uint8_t* data_;
  size_t size_;
};

// One map value: where it is stored, the map's width and its packed type.
struct Value {
  size_t pos;
  size_t parent_width;
  uint8_t packed_type;
};

bool ValueAsInt(const Reader& r, const Value& v, int64_t* out) {
  const int type = v.packed_type >> 2;
  const size_t own_width = size_t{1} << (v.packed_type & 3);
  switch (type) {
    case kInt:
      return r.ReadInt(v.pos, v.parent_width, out);
    case kUInt: {
      uint64_t u;
      if (!r.ReadUInt(v.pos, v.parent_width, &u) || u > INT64_MAX) return false;
      *out = static_cast<int64_t>(u);
      return true;
    }
    case kIndirectInt:
    case kIndirectUInt: {
      size_t at;
      if (!r.Indirect(v.pos, v.parent_width, &at)) return false;
      if (type == kIndirectInt) return r.ReadInt(at, own_width, out);
      uint64_t u;
      if (!r.ReadUInt(at, own_width, &u) || u > INT64_MAX) return false;
      *out = static_cast<int64_t>(u);
      return true;
    }
    default:
      return false;
  }
}

bool ValueAsString(const Reader& r, const Value& v, std::string* out) {
  const int type = v.packed_type >> 2;
  const size_t own_width = size_t{1} << (v.packed_type & 3);
  size_t at;
  if (!r.Indirect(v.pos, v.parent_width, &at)) return false;
  if (type == kString) return r.SizedString(at, own_width, out);
  if (type == kKey) return r.CString(at, out);
  return false;
}

bool SetInt(const char* key, const Reader& r, const Value& v, int64_t lowest, int64_t* field,
            std::string* error) {
  int64_t value;
  if (!ValueAsInt(r, v, &value)) {
    *error = std::string("option '") + key + "' is not an integer";
    return false;
  }
  if (value < lowest || value > 1024) {
    *error = std::string("option '") + key + "' must be in [" + std::to_string(lowest) +
             ", 1024], got " + std::to_string(value);
    return false;
  }
  *field = value;
  return true;
}

}  // namespace

bool ParseAdderOptions(const uint8_t* data, size_t size, AdderOptions* options,
                       std::string* error) {
  const std::string corrupt = "corrupt options buffer (not a flexbuffer map)";
  if (data == nullptr || size < 3) {
    *error = "options buffer missing or too short (" + std::to_string(size) +
             " bytes): the model was not written by keras_pkkd.export";
    return false;
  }
  const Reader r(data, size);
  const size_t root_width = r.byte(size - 1);
  const uint8_t root_type = r.byte(size - 2);
  if (!r.ValidWidth(root_width) || size < 2 + root_width || (root_type >> 2) != kMap) {
    *error = corrupt;
    return false;
  }
  const size_t width = size_t{1} << (root_type & 3);
  size_t values;
  uint64_t count, keys_width, keys_count;
  size_t keys;
  if (!r.Indirect(size - 2 - root_width, root_width, &values) || values < 3 * width ||
      !r.ReadUInt(values - width, width, &count) ||
      !r.ReadUInt(values - 2 * width, width, &keys_width) ||
      !r.Indirect(values - 3 * width, width, &keys) || !r.ValidWidth(keys_width) ||
      keys < keys_width || !r.ReadUInt(keys - keys_width, keys_width, &keys_count) ||
      keys_count != count || count > kMaxEntries) {
    *error = corrupt;
    return false;
  }
  // The values, then one type byte per value, must lie inside the buffer.
  if (values + count * width + count > size) {
    *error = corrupt;
    return false;
  }

  AdderOptions parsed;
  bool seen_padding = false, seen_version = false;
  int seen_mask = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t key_pos;
    std::string key;
    if (!r.Indirect(keys + i * keys_width, keys_width, &key_pos) || !r.CString(key_pos, &key)) {
      *error = corrupt;
      return false;
    }
    const Value v{values + i * width, width, r.byte(values + count * width + i)};
    struct IntKey {
      const char* name;
      int64_t lowest;
      int64_t* field;
    } const ints[] = {{"stride_h", 1, &parsed.stride_h},     {"stride_w", 1, &parsed.stride_w},
                      {"dilation_h", 1, &parsed.dilation_h}, {"dilation_w", 1, &parsed.dilation_w},
                      {"pad_top", 0, &parsed.pad_top},       {"pad_bottom", 0, &parsed.pad_bottom},
                      {"pad_left", 0, &parsed.pad_left},     {"pad_right", 0, &parsed.pad_right}};
    bool known = false;
    for (int k = 0; k < 8; ++k) {
      if (key == ints[k].name) {
        if (!SetInt(ints[k].name, r, v, ints[k].lowest, ints[k].field, error)) return false;
        seen_mask |= 1 << k;
        known = true;
      }
    }
    if (known) continue;
    if (key == "padding") {
      std::string padding;
      if (!ValueAsString(r, v, &padding) ||
          (padding != "SAME" && padding != "VALID" && padding != "EXPLICIT")) {
        *error = "option 'padding' must be the string SAME, VALID or EXPLICIT";
        return false;
      }
      parsed.same_padding = padding == "SAME";
      parsed.explicit_padding = padding == "EXPLICIT";
      seen_padding = true;
    } else if (key == "activation") {
      std::string activation;
      if (!ValueAsString(r, v, &activation) ||
          (activation != "NONE" && activation != "RELU" && activation != "RELU6")) {
        *error = "option 'activation' must be the string NONE, RELU or RELU6";
        return false;
      }
      parsed.activation = activation == "RELU"    ? AdderActivation::kRelu
                          : activation == "RELU6" ? AdderActivation::kRelu6
                                                  : AdderActivation::kNone;
    } else if (key == "version") {
      int64_t version;
      if (!ValueAsInt(r, v, &version) || version != kAdderOptionsVersion) {
        *error = "options version " + (ValueAsInt(r, v, &version) ? std::to_string(version)
                                                                  : std::string("?")) +
                 " is not the version " + std::to_string(kAdderOptionsVersion) +
                 " this kernel reads: re-export the model, or update the kernel";
        return false;
      }
      seen_version = true;
    } else {
      *error = "unknown option '" + key + "' (this kernel reads options version " +
               std::to_string(kAdderOptionsVersion) + ")";
      return false;
    }
  }
  if ((seen_mask & 0xF) != 0xF || !seen_padding || !seen_version) {
    *error = "options must hold stride_h, stride_w, dilation_h, dilation_w, padding and version";
    return false;
  }
  const int pads = seen_mask >> 4;
  if (parsed.explicit_padding && pads != 0xF) {
    *error = "padding EXPLICIT needs pad_top, pad_bottom, pad_left and pad_right";
    return false;
  }
  if (!parsed.explicit_padding && pads != 0) {
    *error = "pad_top / pad_bottom / pad_left / pad_right are only valid with padding EXPLICIT";
    return false;
  }
  *options = parsed;
  return true;
}

}  // namespace pkkd
