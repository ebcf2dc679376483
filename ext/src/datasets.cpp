// datasets.cpp — which reader an image model's dataset needs: a name
// ("fashion-mnist"), or the path of the user's images: a PNG folder or a
// .npy file (read by ext/data, a batch at a time), or a torch.save file
// (.pt, .pth), which needs libtorch's unpickler and so is read here, whole,
// and handed to ext/data as an array.
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sys/stat.h>

#include "internal.hpp"

extern "C" {
#include "am_images.h"
}

namespace am {
namespace {

bool ends_with(std::string s, const char *suffix) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    size_t n = std::strlen(suffix);
    return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

// A dataset name that is a path: it names a folder or file, or looks like one.
bool is_path(const std::string &name) {
    struct stat st;
    return name.find('/') != std::string::npos || ends_with(name, ".npy") || ends_with(name, ".pt") ||
           ends_with(name, ".pth") || stat(name.c_str(), &st) == 0;
}

const char kPtLayouts[] =
    "a tensor of images (N, C, H, W) or (N, H, W), float in [0, 1] or uint8; a tuple or list "
    "(images, labels); or a dict {\"images\": ..., \"labels\": ...}; labels: integers, shape (N)";

// The images and labels (undefined when absent) of a torch.save file.
// GCC 12 sees a null dereference inside libtorch's inlined container
// iterators (IValue vectors, c10::Dict) that cannot happen here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
void read_pt(const std::string &path, torch::Tensor &images, torch::Tensor &labels) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(AM_E_IO, "cannot open " + path + ": " + std::strerror(errno));
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    c10::IValue v;
    try {
        v = torch::pickle_load(bytes);
    } catch (const std::exception &e) {
        // A state_dict (an OrderedDict with attributes) or a pickled module
        // ends here, with an unpickler message that does not say so.
        throw Error(AM_E_FORMAT, path +
                                     " cannot be read as images saved by torch.save (a state_dict or a model "
                                     "holds weights, not images; libtorch's unpickler says: " +
                                     short_what(e.what(), 1) + "); it must hold " + kPtLayouts);
    }
    auto tensor_of = [&](const c10::IValue &x, const char *what) {
        if (!x.isTensor())
            throw Error(AM_E_FORMAT, path + ": the " + what + " are not a tensor; the file must hold " + kPtLayouts);
        return x.toTensor();
    };
    if (v.isTensor()) {
        images = v.toTensor();
    } else if (v.isTuple() || v.isList()) {
        auto items = v.isTuple() ? v.toTupleRef().elements().vec() : v.toListRef().vec();
        if (items.empty() || items.size() > 2)
            throw Error(AM_E_FORMAT, path + " holds a sequence of " + std::to_string(items.size()) +
                                         " items; it must hold " + kPtLayouts);
        images = tensor_of(items[0], "images (item 0)");
        if (items.size() == 2) labels = tensor_of(items[1], "labels (item 1)");
    } else if (v.isGenericDict()) {
        std::string keys;
        for (const auto &kv : v.toGenericDict()) {
            std::string k = kv.key().isString() ? kv.key().toStringRef() : "?";
            keys += (keys.empty() ? "" : ", ") + k;
            if (k == "images") images = tensor_of(kv.value(), "images");
            if (k == "labels") labels = tensor_of(kv.value(), "labels");
        }
        if (!images.defined())
            throw Error(AM_E_FORMAT, path + " holds a dict with keys " + keys +
                                         " but no \"images\" (a state_dict is weights, not images); it must hold " +
                                         kPtLayouts);
    } else {
        throw Error(AM_E_FORMAT, path + " holds a " + v.tagKind() + "; it must hold " + kPtLayouts);
    }
}
#pragma GCC diagnostic pop

// A torch.save file as an "images" dataset: the tensors are copied into
// malloc'ed arrays that ext/data takes over.
am_dataset *open_pt(const std::string &path, const am_dataset_options &o) {
    torch::Tensor images, labels;
    read_pt(path, images, labels);
    images = images.to(torch::kCPU);
    if (images.dim() == 3) images = images.unsqueeze(1);
    if (images.dim() != 4)
        throw Error(AM_E_FORMAT, path + ": the images have shape " + shape_str(images.sizes()) +
                                     "; they must be (N, C, H, W), or (N, H, W) for one channel");
    int dtype = AM__ARRAY_F32;
    if (images.scalar_type() == torch::kByte)
        dtype = AM__ARRAY_U8;
    else if (images.is_floating_point())
        images = images.to(torch::kFloat);  // float64 or float16 read as float32
    else
        throw Error(AM_E_FORMAT, path + ": the images are " + std::string(c10::toString(images.scalar_type())) +
                                     "; they must be float (in [0, 1]) or uint8 (0..255)");
    images = images.contiguous();
    int64_t n = images.size(0);
    if (labels.defined()) {
        if (labels.is_floating_point() || labels.is_complex() || labels.dim() != 1 || labels.size(0) != n)
            throw Error(AM_E_FORMAT, path + ": the labels have shape " + shape_str(labels.sizes()) + " and type " +
                                         std::string(c10::toString(labels.scalar_type())) +
                                         "; they must be integers, one per image (" + std::to_string(n) + ")");
        labels = labels.to(torch::kCPU, torch::kLong).contiguous();
    }
    size_t nbytes = images.numel() * images.element_size();
    void *data = std::malloc(nbytes ? nbytes : 1);
    int64_t *lab = labels.defined() ? static_cast<int64_t *>(std::malloc(sizeof(int64_t) * (n ? n : 1))) : nullptr;
    if (!data || (labels.defined() && !lab)) {
        std::free(data);
        std::free(lab);
        throw Error(AM_E_NOMEM, "out of memory reading " + path);
    }
    std::memcpy(data, images.data_ptr(), nbytes);
    if (lab) std::memcpy(lab, labels.data_ptr<int64_t>(), sizeof(int64_t) * n);
    int64_t shape[4] = {images.size(0), images.size(1), images.size(2), images.size(3)};
    am_dataset *p = nullptr;
    int st = am__dataset_open_array(path.c_str(), data, dtype, shape, lab, &o, &p);
    if (st != AM_OK) {
        std::string msg = am_dataset_error(p);
        am_dataset_free(p);
        throw Error(st, "dataset: " + msg);
    }
    return p;
}

}  // namespace

am_dataset *open_image_dataset(const am_model *m, const std::string &name, const char *path, const char *split) {
    std::string ds_name = name, ds_path = path ? path : "";
    if (name != "fashion-mnist" && name != "images" && is_path(name)) {
        ds_name = "images";
        ds_path = name;
    }
    am_dataset_options o{};
    if (m->input_shape.size() == 3) {
        o.channels = m->input_shape[0];
        o.height = m->input_shape[1];
        o.width = m->input_shape[2];
    }
    // Label names for arrays: the dataset's own in the metadata, else the
    // model's (a classifier's classes are usually its dataset's).
    const auto &names = m->dataset_labels.empty() ? m->labels : m->dataset_labels;
    std::vector<const char *> cnames;
    for (const auto &s : names) cnames.push_back(s.c_str());
    o.label_names = cnames.data();
    o.num_label_names = static_cast<int>(cnames.size());
    if (ds_name == "images" && (ends_with(ds_path, ".pt") || ends_with(ds_path, ".pth"))) {
        o.path = ds_path.c_str();
        return open_pt(ds_path, o);
    }
    o.path = ds_name == "images" || !ds_path.empty() ? ds_path.c_str() : nullptr;
    am_dataset *p = nullptr;
    int st = am_dataset_open(ds_name.c_str(), split, &o, &p);
    if (st != AM_OK) {
        std::string msg = am_dataset_error(p);
        am_dataset_free(p);
        throw Error(st, "dataset: " + msg);
    }
    return p;
}

}  // namespace am
