"""Performance measurements (training throughput, lens, probes, BLAS, mlx-lm, MFU, memory) and the BENCH.md writer.

Every measurement returns plain numbers, so tests, claims (H12: LoRA vs full fine-tuning cost) and
``run.run_bench`` share one implementation. Timings on a shared CPU are noisy: ratios are measured side by
side in one run (interleaved where cheap), and steady-state rates use medians over steps or windows.

One module per measurement family (nothing is re-exported here, so ``import lazarus_bench.bench`` stays cheap):

* :mod:`.formulas`: model dimensions, parameter and FLOP counts, MFU, the memory model, mlx-lm report parsing;
* :mod:`.machine`: CPU, GEMM rates, peak RSS and the machine description;
* :mod:`.fixtures`: the bench tokenizer, models and fixed-length data;
* :mod:`.training`: training-step throughput (SFT, dual-reward, GRPO, zoo pretraining);
* :mod:`.lens`: logit lens over all layers and probe fitting;
* :mod:`.mlx_lm`: subprocess runs: OpenBLAS vs reference BLAS, ours vs ``mlx_lm lora``;
* :mod:`.scaling`: the zoo pretraining step by model size and batch size;
* :mod:`.render`: BENCH.md and bench.json;
* :mod:`.run`: ``run_bench``, every measurement in one run;
* :mod:`.worker`: ``python -m lazarus_bench.bench.worker worker ...``, the subprocess entry point for BLAS and
  mlx-lm runs.
"""
