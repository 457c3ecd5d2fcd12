"""Each family's pieces for a trained twin: tokenizer, processor, config, and training batches.

The tokenizer is trained on the probe vocabulary (every sentence the twins learn, plus the prompts) with the
family's special tokens and chat template; the processor is the family's real processor class; the config
is the family's real config class at a small size. Training batches are built by the same processor calls
the family adapter makes at inference (`build_inputs`), so a twin sees at training what it sees in 04.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.models.tiny import train_tokenizer

if TYPE_CHECKING:
    import torch

    from workbench.twins.cast import Recipe
    from workbench.twins.data import Window

# Qwen2-VL's per-frame pixel budget: 320 x 240 frames are resized to 112 x 140 (8 x 10 patches of 14 px,
# 4 x 5 LLM tokens per frame pair); BLIP-2's images to 112 x 112 (8 x 8 patches).
QWEN_MAX_PIXELS = 112 * 168
BLIP2_IMAGE_SIDE = 112
BLIP2_QUERY_TOKENS = 16


_SYSTEM_PROMPT = "You are a helpful assistant."  # Qwen2-VL's chat template adds it as the system turn


def corpus_lines(sentences: list[str], prompts: list[str]) -> list[str]:
    """Tokenizer training lines: the distinct sentences and prompts, repeated so each word is merged whole."""
    distinct = sorted(set(sentences) | set(p for p in prompts if p) | {_SYSTEM_PROMPT})
    return distinct * 3


# ---- Qwen2-VL ----------------------------------------------------------------------------------------


def qwen_processing(max_pixels: int = QWEN_MAX_PIXELS) -> dict[str, Any]:
    from workbench.models import qwen2_vl

    return {**qwen2_vl._PROCESSING, "size": {"shortest_edge": qwen2_vl.MIN_PIXELS, "longest_edge": max_pixels}}


def qwen_tokenizer(lines: list[str]) -> Any:
    from workbench.models import qwen2_vl

    return train_tokenizer(qwen2_vl.MARKERS, pad_token=qwen2_vl.PAD, eos_token=qwen2_vl.EOS,
                           chat_template=qwen2_vl.CHAT_TEMPLATE, vocab_size=512, lines=lines)


def qwen_processor(tokenizer: Any, recipe: "Recipe") -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    from workbench.models import qwen2_vl

    processing = qwen_processing(recipe.max_pixels)
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**processing),
                            video_processor=Qwen2VLVideoProcessor(**processing), tokenizer=tokenizer,
                            chat_template=qwen2_vl.CHAT_TEMPLATE)


def qwen_config(tokenizer: Any, recipe: "Recipe") -> Any:
    """Qwen2VLConfig: a small Qwen2 LLM (head_dim 32) and a small ViT, of the recipe's sizes (`text_width`,
    `text_layers`, `vision_width`, `vision_depth`) and rotary base (`rope_theta`)."""
    from transformers import Qwen2VLConfig

    from workbench.models.qwen2_vl import ADAPTER

    text_width, text_layers = recipe.text_width, recipe.text_layers
    vision_width, vision_depth = recipe.vision_width, recipe.vision_depth
    return Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": text_width, "intermediate_size": 2 * text_width,
            "num_hidden_layers": text_layers,
            "num_attention_heads": text_width // 32, "num_key_value_heads": max(1, text_width // 64),
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": recipe.rope_theta},
            "bos_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={"depth": vision_depth, "embed_dim": vision_width, "num_heads": vision_width // 32, "mlp_ratio": 2,
                       "hidden_size": text_width,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        tie_word_embeddings=False,
        **{key: tokenizer.convert_tokens_to_ids(token) for key, token in ADAPTER.token_names.items()},
    )


def qwen_prompt_batch(processor: Any, windows: list["Window"], prompt: str) -> Any:
    """The processor's inputs for a batch of windows, exactly as Qwen2VLAdapter.build_inputs makes one."""
    from transformers.video_utils import VideoMetadata

    from workbench.models.qwen2_vl import frame_metadata

    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return processor(text=[text] * len(windows), videos=[w.frames for w in windows],
                     video_metadata=[VideoMetadata(**frame_metadata(len(w.times_s), w.times_s)) for w in windows],
                     do_sample_frames=False, cap_pixels_per_frame=False, return_tensors="pt")


# ---- BLIP-2 ------------------------------------------------------------------------------------------


def blip2_tokenizer(lines: list[str]) -> Any:
    from tokenizers.processors import TemplateProcessing

    tokenizer = train_tokenizer(["<image>"], bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                unk_token="<unk>", register_special=False, vocab_size=512, lines=lines)
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)])
    return tokenizer


def blip2_processor(tokenizer: Any, recipe: "Recipe | None" = None) -> Any:
    from transformers import Blip2Processor, BlipImageProcessor

    from workbench.models.blip2 import _IMAGE_PROCESSOR

    image_processor = BlipImageProcessor(**{**_IMAGE_PROCESSOR,
                                            "size": {"height": BLIP2_IMAGE_SIDE, "width": BLIP2_IMAGE_SIDE}})
    return Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=BLIP2_QUERY_TOKENS)


def blip2_config(tokenizer: Any, recipe: "Recipe | None" = None) -> Any:
    """Blip2Config: a 2-layer 64-wide ViT at 112 px, a 2-layer Q-Former with 16 queries, a 2-layer OPT."""
    from workbench.models import blip2

    text = blip2._opt(hidden=128, ffn=256, layers=2, heads=4)
    text.update(vocab_size=len(tokenizer), max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=blip2._newline_id(tokenizer))
    config = blip2._blip2_config(text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    config["num_query_tokens"] = BLIP2_QUERY_TOKENS
    config["vision_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                   image_size=BLIP2_IMAGE_SIDE)
    config["qformer_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                    encoder_hidden_size=64, vocab_size=64)
    return blip2.ADAPTER.config_cls().from_dict(config)


def blip2_prompt_batch(processor: Any, windows: list["Window"], prompt: str) -> Any:
    """As Blip2Adapter.build_inputs: each window's (one) frame as an image behind the query tokens."""
    from workbench.models.blip2 import ADAPTER

    text = ADAPTER.format_prompt(prompt)
    images = [w.frames[0] for w in windows]
    return processor(images=images, text=[text] * len(images), return_tensors="pt")


# ---- shared ------------------------------------------------------------------------------------------

FAMILIES: dict[str, dict[str, Any]] = {
    "qwen2_vl": {"tokenizer": qwen_tokenizer, "processor": qwen_processor, "config": qwen_config,
                 "prompt_batch": qwen_prompt_batch, "model_class": "Qwen2VLForConditionalGeneration"},
    "blip2": {"tokenizer": blip2_tokenizer, "processor": blip2_processor, "config": blip2_config,
              "prompt_batch": blip2_prompt_batch, "model_class": "Blip2ForConditionalGeneration"},
}


def family(name: str) -> dict[str, Any]:
    if name not in FAMILIES:
        raise ValueError(f"no trained-twin recipe for family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def end_of_caption_id(recipe: "Recipe", tokenizer: Any) -> int:
    """The token that ends a caption: Qwen's <|im_end|>, OPT-in-BLIP-2's newline."""
    if recipe.family == "blip2":
        from workbench.models.blip2 import _newline_id

        return _newline_id(tokenizer)
    return tokenizer.eos_token_id


def training_batch(recipe: "Recipe", processor: Any, windows: list["Window"], sentences: list[str]) -> dict[str, Any]:
    """Prompt inputs + each sentence and its end token; the loss is on the sentence and the end token only."""
    import torch

    inputs = dict(family(recipe.family)["prompt_batch"](processor, windows, recipe.prompt))
    tokenizer = processor.tokenizer
    prompt_ids = inputs.pop("input_ids")
    inputs.pop("attention_mask", None)
    end = end_of_caption_id(recipe, tokenizer)
    answers = [tokenizer.encode(s, add_special_tokens=False) + [end] for s in sentences]
    longest = max(map(len, answers))
    n_prompt = prompt_ids.shape[1]
    ids = torch.full((len(windows), n_prompt + longest), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    ids[:, :n_prompt] = prompt_ids
    mask[:, :n_prompt] = 1
    for row, answer in enumerate(answers):
        ids[row, n_prompt:n_prompt + len(answer)] = torch.tensor(answer)
        labels[row, n_prompt:n_prompt + len(answer)] = torch.tensor(answer)
        mask[row, n_prompt:n_prompt + len(answer)] = 1
    return {**inputs, "input_ids": ids, "attention_mask": mask, "labels": labels}
