"""CLI: `vmclip motion "prompt"`, `vmclip train`, `vmclip eval motion` (registered as eval-motion).

Registration is light: torch and the model load inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmclip.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_generate(subparsers)
    _register_train(subparsers)
    _register_evaluate(subparsers)


def _register_generate(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser(
        "motion",
        help="generate a 3D motion (SMPL-24) from a text prompt",
        description="Generate SMPL-24 motion (30 fps) from free text with the shipped MotionCLIP-style "
        "model. Actions in sequence ('walk forward, then wave', 'turns around and walks away') are "
        "joined by in-painting; actions done together ('walks while waving the right hand') take "
        "the legs from one and the arm from the other. The same seed gives the same motion; other seeds "
        "give other plausible motions. Outputs are written atomically.",
        epilog="examples:\n"
        '  vmclip motion "a person waves with the right hand" --seconds 4 --seed 0 -o wave.npz\n'
        '  vmclip motion "walk forward, then wave" -o walk_wave.npz --bvh walk_wave.bvh '
        "--preview walk_wave.mp4\n"
        '  vmclip motion "a person walks in a circle" --seconds 6 --constraints path.npz -o circle.npz\n'
        "(`vmclip motion convert ...` converts mocap files instead)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("prompt", help="what the person does, in plain English (at most 500 characters)")
    gen.add_argument(
        "-o", "--output", type=Path, required=True, help="motion file to write (.npz, AMASS-style)"
    )
    gen.add_argument("--seconds", type=float, default=4.0, help="length in seconds, 1 to 10 (default 4)")
    gen.add_argument("--seed", type=int, default=0, help="random seed: same seed, same motion (default 0)")
    gen.add_argument(
        "--constraints",
        type=Path,
        help="keys.npz holding poses (T,24,3) axis-angle, trans (T,3) and a boolean mask (T,) for whole "
        "frames or (T,25) for joints plus the root's ground path; T = seconds x 30. The motion meets the "
        "held values (in-betweening, regenerating a range, following a path)",
    )
    gen.add_argument("--bvh", type=Path, help="also write a BVH file (SMPL-24 skeleton, Y up, metres)")
    gen.add_argument("--preview", type=Path, help="also write a stick-figure preview video (.mp4)")
    gen.add_argument(
        "--encoder",
        choices=("minilm", "clip"),
        default="minilm",
        help="text encoder: minilm (shipped, default) or clip (needs CLIP weights and a CLIP-space model)",
    )
    gen.add_argument("--checkpoint", type=Path, help="model weights (default: the shipped model)")
    gen.add_argument(
        "--model",
        choices=("masked", "motionclip"),
        default=None,
        help="shipped model: masked (masked-token model, 20 fps) or motionclip (the MotionCLIP-style "
        "autoencoder with its latent bank); default: the shipped default",
    )
    gen.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    gen.set_defaults(func=_generate)


def _add_masked_options(tr: argparse.ArgumentParser) -> None:
    """`vmclip train --model masked`'s own options (the masked-token model)."""
    tr.add_argument("--tokenizer-steps", type=int, default=4500, help="masked model: tokenizer steps")
    tr.add_argument("--transformer-steps", type=int, default=14000, help="masked model: transformer steps")
    tr.add_argument(
        "--quantizers",
        type=int,
        default=None,
        help="masked model: residual VQ layers of the tokenizer (default 1, or the --init model's); "
        "above 1, a residual transformer predicts the upper layers",
    )
    tr.add_argument(
        "--residual-steps",
        type=int,
        default=4000,
        help="masked model with --quantizers above 1: residual transformer steps",
    )
    tr.add_argument(
        "--text-noise",
        type=float,
        default=0.0,
        help="masked model: noise on the text embedding in training (0.04 reaches cosine ~0.8, where "
        "paraphrases of a description lie)",
    )
    tr.add_argument(
        "--text-every-token",
        action="store_true",
        help="masked model: add the text to every token's input as well as the prefix token",
    )
    tr.add_argument(
        "--condition",
        choices=("text", "motionclip"),
        default="text",
        help="masked model: condition the transformer on the prompt's embedding (text) or on the "
        "shipped MotionCLIP-style model's motion latent, drawn from its bank by the prompt (motionclip)",
    )
    tr.add_argument(
        "--guide",
        action="store_true",
        help="masked model with --condition motionclip: also give the transformer that model's own "
        "decoding of the latent, per token (it keeps the action's timing; the transformer restores speed)",
    )
    tr.add_argument(
        "--init",
        type=Path,
        help="masked model: start from this model file (its tokenizer and transformer; "
        "--tokenizer-steps 0 keeps the tokenizer as it is)",
    )


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    tr = subparsers.add_parser(
        "train",
        help="train the text-to-motion model on a processed data set",
        description="Train the MotionCLIP-style text-to-motion model on `vmclip data build` output. "
        "Seeded and reproducible for a given step count; logs losses to stdout and "
        "OUT/train_log.jsonl; saves OUT/last.pt (resumable), OUT/best.pt (best validation "
        "MPJPE) and OUT/model.pt (fp16 weights + latent bank, the shipped format).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument(
        "--model",
        choices=("motionclip", "masked"),
        default="motionclip",
        help="which model: the MotionCLIP-style autoencoder, or the masked-token model (tokenizer + "
        "masked transformer; reads a training pack, made as OUT/pack.npz when --data is a folder)",
    )
    tr.add_argument(
        "--data", type=Path, default=Path("data/processed"), help="processed data set folder (or a pack .npz)"
    )
    tr.add_argument("--out", type=Path, required=True, help="output folder for checkpoints and logs")
    _add_masked_options(tr)
    tr.add_argument("--steps", type=int, default=4000, help="optimisation steps")
    tr.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stop (and save) after this many minutes even if steps remain",
    )
    tr.add_argument("--seed", type=int, default=0, help="random seed")
    tr.add_argument("--resume", type=Path, help="continue from a checkpoint (OUT/last.pt)")
    tr.add_argument("--batch", type=int, default=32, help="windows per step")
    tr.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (AdamW, cosine decay); default 6e-4 (motionclip), 4e-4 (masked)",
    )
    tr.add_argument("--encoder", choices=("minilm", "clip"), default="minilm", help="text encoder")
    tr.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    tr.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    tr.add_argument("--fps", type=float, default=15.0, help="frame rate the model works at")
    tr.add_argument("--window-seconds", type=float, default=3.0, help="longest training window")
    tr.add_argument(
        "--width", type=int, default=256, help="transformer width (0: the latent size, MotionCLIP's layout)"
    )
    tr.add_argument("--ff-size", type=int, default=512, help="transformer feed-forward width")
    tr.add_argument(
        "--no-bf16",
        action="store_true",
        help="train in float32 (default: bfloat16 autocast where the device runs it natively)",
    )
    tr.add_argument("--enc-layers", type=int, default=2, help="encoder layers")
    tr.add_argument("--dec-layers", type=int, default=3, help="decoder layers")
    tr.add_argument(
        "--memory-tokens",
        type=int,
        default=8,
        help="tokens the latent is mapped to for the decoder's cross-attention (1 = MotionCLIP)",
    )
    tr.add_argument("--warmup", type=int, default=200, help="learning-rate warm-up steps")
    tr.add_argument(
        "--memory-scale",
        type=float,
        default=1.0,
        help="factor on the normalised latent before the decoder's memory map",
    )
    tr.add_argument(
        "--post-norm",
        action="store_true",
        help="post-norm transformer layers as MotionCLIP (default: pre-norm, which learns "
        "motion dynamics much faster on a small budget)",
    )
    tr.add_argument("--dropout", type=float, default=0.1, help="transformer dropout (MotionCLIP: 0.1)")
    tr.add_argument("--align-weight", type=float, default=1.0, help="factor on the text-alignment losses")
    tr.add_argument("--gen-weight", type=float, default=1.0, help="factor on the text-decoding losses")
    tr.add_argument("--gen-fraction", type=float, default=0.25, help="share of a batch decoded from its text")
    tr.add_argument(
        "--velocity-weight", type=float, default=1.0, help="factor on the joint and root velocity losses"
    )
    tr.add_argument("--bank-size", type=int, default=6000, help="latents kept for generation")
    tr.add_argument(
        "--sources",
        nargs="+",
        default=None,
        help="train only on clips from these sources (e.g. `cmu` for a model free for commercial use)",
    )
    tr.set_defaults(func=_train)


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "eval-motion",
        help="evaluate the text-to-motion model (also spelled `vmclip eval motion`)",
        description="Evaluate on the held-out recordings: reconstruction MPJPE (mm), text-to-motion "
        "retrieval R@1/R@3 among 32, action-classifier top-1 of generated motions for label "
        "texts and paraphrases, foot skating, jitter and diversity. Prints a table and "
        "writes JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("--data", type=Path, default=Path("data/processed"), help="processed data set folder")
    ev.add_argument("--checkpoint", type=Path, help="model weights (default: the shipped model)")
    ev.add_argument(
        "--model", choices=("masked", "motionclip"), default=None, help="shipped model (default: the default)"
    )
    ev.add_argument("--split", default="test", choices=("val", "test"), help="held-out split")
    ev.add_argument("-o", "--output", type=Path, help="write the metrics as JSON here")
    ev.add_argument("--seed", type=int, default=0, help="random seed")
    ev.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    ev.add_argument("--device", help="torch device")
    ev.set_defaults(func=_evaluate)


def _check_out(path: Path | None, suffix: str, what: str) -> None:
    if path is None:
        return
    from vmclip.fileio import check_writable

    if path.suffix.lower() != suffix:
        raise InputError(f"{path}: {what} must end in {suffix}")
    check_writable(path)


def _generate(args: argparse.Namespace) -> int:
    from vmclip.t2m.generate import OUT_FPS, output_frames, validate_prompt, validate_seconds, validate_seed

    # Everything that can be checked is checked before the model loads.
    validate_prompt(args.prompt)
    seconds = validate_seconds(args.seconds)
    validate_seed(args.seed)
    constraints = None
    if args.constraints is not None:
        from vmclip.motion.constraints import MotionConstraints

        if not args.constraints.is_file():
            raise InputError(f"{args.constraints}: no such constraints file")
        constraints = MotionConstraints.load_npz(args.constraints, output_frames(seconds, OUT_FPS))
        constraints.check_reachable(OUT_FPS, where=str(args.constraints))
    _check_out(args.output, ".npz", "the motion output")
    _check_out(args.bvh, ".bvh", "--bvh")
    _check_out(args.preview, ".mp4", "--preview")
    outs = [p.resolve() for p in (args.output, args.bvh, args.preview) if p is not None]
    if len(set(outs)) != len(outs):
        raise InputError("output paths must differ")

    from vmclip.t2m import load_generator

    gen = load_generator(
        device=args.device, encoder=args.encoder, checkpoint=args.checkpoint, model=args.model
    )
    motion = gen.generate(args.prompt, seconds=args.seconds, seed=args.seed, constraints=constraints)
    motion.save_npz(args.output)
    written = [str(args.output)]
    if args.bvh:
        from vmclip.motion import write_bvh

        write_bvh(motion, args.bvh)
        written.append(str(args.bvh))
    if args.preview:
        from vmclip.motion import write_preview

        write_preview(motion, args.preview)
        written.append(str(args.preview))
    print(
        f"{motion.num_frames} frames ({motion.seconds:.1f} s at {motion.fps:g} fps) -> {', '.join(written)}",
        file=sys.stderr,
    )
    return 0


def _train_masked(args: argparse.Namespace) -> int:
    from vmclip.t2m.train_masked import MaskedOptions, train_masked

    opts = MaskedOptions(
        data=args.data,
        out=args.out,
        seed=args.seed,
        threads=args.threads,
        minutes=args.minutes,
        tokenizer_steps=args.tokenizer_steps,
        transformer_steps=args.transformer_steps,
        residual_steps=args.residual_steps,
        bf16=not args.no_bf16,
        lr=args.lr or MaskedOptions.lr,
        text_noise=args.text_noise,
        init=args.init,
        device=args.device,
        model={
            "condition": args.condition,
            **({"text_every_token": True} if args.text_every_token else {}),
            **({"guide": True} if args.guide else {}),
            **({"quantizers": args.quantizers} if args.quantizers is not None else {}),
        },
    )
    train_masked(opts)
    return 0


def _train(args: argparse.Namespace) -> int:
    from vmclip.t2m.train import TrainOptions, train

    if args.lr is not None and not args.lr > 0:
        raise InputError("--lr must be above 0")
    if not 0 <= args.text_noise <= 1:
        raise InputError("--text-noise must be between 0 and 1")
    if args.model == "masked":
        return _train_masked(args)
    if args.fps <= 0 or args.fps > 30:
        raise InputError("--fps must be in (0, 30]")
    if not 1 <= args.window_seconds <= 10:
        raise InputError("--window-seconds must be between 1 and 10")
    model = {
        "fps": args.fps,
        "max_frames": int(round(args.window_seconds * args.fps)),
        "width": args.width or None,
        "ff_size": args.ff_size,
        "enc_layers": args.enc_layers,
        "dec_layers": args.dec_layers,
        "memory_tokens": args.memory_tokens,
        "memory_scale": args.memory_scale,
        "norm_first": not args.post_norm,
        "dropout": args.dropout,
    }
    opts = TrainOptions(
        data=args.data,
        out=args.out,
        steps=args.steps,
        minutes=args.minutes,
        seed=args.seed,
        resume=args.resume,
        batch=args.batch,
        lr=args.lr or 6e-4,
        encoder=args.encoder,
        threads=args.threads,
        device=args.device,
        bank_size=args.bank_size,
        model=model,
        sources=args.sources,
        bf16=not args.no_bf16,
        warmup=args.warmup,
        gen_fraction=args.gen_fraction,
        align_weight=args.align_weight,
        gen_weight=args.gen_weight,
        velocity_weight=args.velocity_weight,
    )
    train(opts)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from vmclip.t2m.evaluate import evaluate, format_report

    report = evaluate(
        args.data,
        checkpoint=args.checkpoint,
        model=args.model,
        split=args.split,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        output=args.output,
    )
    print(format_report(report))
    return 0
