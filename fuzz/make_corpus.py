#!/usr/bin/env python3
"""Writes the fuzz seed corpus (fuzz/corpus/{safetensors,config}/): small valid and broken files.

Standard library only. The output is committed; rerun after changing the seeds:  python3 fuzz/make_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def st(header, data=b"", pad=True):
    """A safetensors file from a header (dict or raw str/bytes) and a data region."""
    h = header if isinstance(header, (bytes, str)) else json.dumps(header, separators=(",", ":"))
    h = h.encode() if isinstance(h, str) else h
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def tensors(specs, metadata=None):
    """Valid file: specs = [(name, dtype, shape)], contents are a counting byte pattern."""
    size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in specs:
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + i) * 37 % 251 for i in range(n))
    return st(header, data)


def mamba_specs(d_model=4, n_layer=1, vocab=8, d_state=2, d_conv=2, dt_rank=1, dtype="F32"):
    d_inner = 2 * d_model
    specs = [("backbone.embeddings.weight", dtype, [vocab, d_model])]
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        specs += [
            (p + "norm.weight", dtype, [d_model]),
            (p + "mixer.A_log", dtype, [d_inner, d_state]),
            (p + "mixer.D", dtype, [d_inner]),
            (p + "mixer.conv1d.weight", dtype, [d_inner, 1, d_conv]),
            (p + "mixer.conv1d.bias", dtype, [d_inner]),
            (p + "mixer.in_proj.weight", dtype, [2 * d_inner, d_model]),
            (p + "mixer.x_proj.weight", dtype, [dt_rank + 2 * d_state, d_inner]),
            (p + "mixer.dt_proj.weight", dtype, [d_inner, dt_rank]),
            (p + "mixer.dt_proj.bias", dtype, [d_inner]),
            (p + "mixer.out_proj.weight", dtype, [d_model, d_inner]),
        ]
    return specs + [("backbone.norm_f.weight", dtype, [d_model])]


def safetensors_seeds():
    e = lambda d, s, o: {"dtype": d, "shape": s, "data_offsets": o}
    return {
        "valid_f32.safetensors": tensors([("w", "F32", [2, 3]), ("b", "F32", [3])], {"format": "pt"}),
        "valid_f16_bf16.safetensors": tensors([("h", "F16", [4]), ("g", "BF16", [2, 2]), ("s", "F32", [])]),
        "valid_mixed_dtypes.safetensors": tensors([("i", "I64", [2]), ("u", "U8", [3]), ("f", "BOOL", [1])]),
        "valid_empty_tensor.safetensors": tensors([("e", "F32", [0, 4]), ("x", "F16", [2])]),
        "valid_no_tensors.safetensors": st({}),
        "valid_mamba_tiny.safetensors": tensors(mamba_specs()),
        "valid_mamba_bf16.safetensors": tensors(mamba_specs(dtype="BF16", n_layer=2)),
        "valid_out_of_order.safetensors": st({"b": e("F32", [1], [4, 8]), "a": e("F32", [1], [0, 4])}, b"\1" * 8),
        "bad_short.safetensors": b"\x10\0\0",
        "bad_header_len_beyond_file.safetensors": struct.pack("<Q", 1000000) + b"{}" + b" " * 110,
        "bad_header_len_huge.safetensors": struct.pack("<Q", 2**64 - 1) + b"{}",
        "bad_truncated.safetensors": tensors([("w", "F32", [4, 4])])[:-9],
        "bad_overlap.safetensors": st({"a": e("F32", [2], [0, 8]), "b": e("F32", [2], [4, 12])}, b"\0" * 12),
        "bad_hole.safetensors": st({"a": e("F32", [1], [0, 4]), "b": e("F32", [1], [8, 12])}, b"\0" * 12),
        "bad_end_before_begin.safetensors": st({"a": e("F32", [1], [8, 4])}, b"\0" * 8),
        "bad_size_mismatch.safetensors": st({"a": e("F32", [2, 2], [0, 8])}, b"\0" * 8),
        "bad_shape_overflow.safetensors": st({"a": e("F32", [2**32, 2**32], [0, 16])}, b"\0" * 16),
        "bad_shape_overflow_zero.safetensors": st({"a": e("F32", [2**62, 4, 0], [0, 0])}),
        "bad_negative_dim.safetensors": st({"a": e("F32", [-1], [0, 4])}, b"\0" * 4),
        "bad_unknown_dtype.safetensors": st({"a": e("F7", [1], [0, 4])}, b"\0" * 4),
        "bad_duplicate_names.safetensors": st(
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8),
        "bad_invalid_utf8.safetensors": st(b'{"a\xc0\x80":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                                           b"\0" * 4),
        "bad_surrogate_escape.safetensors": st('{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                                               b"\0" * 4),
        "bad_deep_nesting.safetensors": st('{"__metadata__":' + "[" * 200 + "]" * 200 + "}"),
        "bad_metadata_type.safetensors": st({"__metadata__": {"a": 1}}),
        "bad_trailing_bytes.safetensors": st({}, b"junk"),
        "bad_nul_padding.safetensors": st(b"{}\0\0\0\0\0\0", pad=False),
    }


def config_seeds():
    hf = {
        "architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "eos_token_id": 0, "expand": 2,
        "hidden_act": "silu", "hidden_size": 768, "intermediate_size": 1536, "layer_norm_epsilon": 1e-05,
        "model_type": "mamba", "num_hidden_layers": 24, "pad_token_id": 0, "residual_in_fp32": True,
        "state_size": 16, "time_step_rank": 48, "use_bias": False, "use_conv_bias": True, "vocab_size": 50280,
        "tie_word_embeddings": True,
    }
    ss = {"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {}, "rms_norm": True,
          "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}
    dump = lambda o: json.dumps(o, indent=2).encode()
    return {
        "hf_mamba_130m.json": dump(hf),
        "hf_minimal_auto_rank.json": dump({"model_type": "mamba", "hidden_size": 100, "num_hidden_layers": 2,
                                           "vocab_size": 7, "time_step_rank": "auto", "eos_token_id": [1, 2]}),
        "hf_options.json": dump(dict(hf, use_bias=True, use_conv_bias=False, conv_kernel=3, state_size=8,
                                     tie_word_embeddings=False, bos_token_id=None)),
        "mambart.json": dump(dict(hf, mambart={"format_version": 1, "source": "state-spaces/mamba-130m",
                                               "rms_norm": False, "vocab_size_unpadded": 50277})),
        "state_spaces_130m.json": dump(ss),
        "state_spaces_full.json": dump(dict(ss, d_intermediate=0, attn_layer_idx=[], norm_epsilon=1e-6,
                                            ssm_cfg={"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto",
                                                     "bias": False, "conv_bias": True, "layer": "Mamba1"})),
        "bad_mamba2.json": dump({"model_type": "mamba2", "hidden_size": 768}),
        "bad_ss_mamba2.json": dump(dict(ss, ssm_cfg={"layer": "Mamba2"})),
        "bad_falcon.json": dump(dict(hf, model_type="falcon_mamba")),
        "bad_missing_field.json": dump({"model_type": "mamba", "num_hidden_layers": 2, "vocab_size": 10}),
        "bad_negative.json": dump(dict(hf, hidden_size=-3)),
        "bad_types.json": dump(dict(hf, use_bias="yes", state_size=16.5)),
        "bad_newer_mambart.json": dump(dict(hf, mambart={"format_version": 2})),
        "bad_hybrid.json": dump(dict(ss, attn_layer_idx=[1], d_intermediate=4)),
        "bad_duplicate_key.json": b'{"model_type":"mamba","hidden_size":8,"hidden_size":9}',
        "bad_syntax.json": b'{"model_type": "mamba", "hidden_size": 08,}',
        "bad_utf8.json": b'{"model_type": "mam\xed\xa0\x80ba"}',
        "bad_nesting.json": b'{"ssm_cfg":' + b"[" * 100 + b"]" * 100 + b"}",
    }


def main():
    for sub, seeds in (("safetensors", safetensors_seeds()), ("config", config_seeds())):
        out = os.path.join(HERE, "corpus", sub)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print(f"{out}: {len(seeds)} files, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
