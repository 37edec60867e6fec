"""The named shapes of model/src/config.rs (ModelConfig::preset) for the PyTorch references."""
from transformers import LlamaConfig, Qwen2Config

SHAPES = {
    "tiny": (Qwen2Config, dict(vocab_size=512, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                               num_attention_heads=4, num_key_value_heads=2, rope_theta=1e4, tie_word_embeddings=True)),
    "smollm2-135m": (LlamaConfig, dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                       num_attention_heads=9, num_key_value_heads=3, rope_theta=1e5, rms_norm_eps=1e-5,
                                       tie_word_embeddings=True)),
    "qwen2.5-0.5b": (Qwen2Config, dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                       num_attention_heads=14, num_key_value_heads=2, rope_theta=1e6, tie_word_embeddings=True)),
    "qwen2.5-1.5b": (Qwen2Config, dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                       num_attention_heads=12, num_key_value_heads=2, rope_theta=1e6, tie_word_embeddings=True)),
    "llama3.2-1b": (LlamaConfig, dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                      num_attention_heads=32, num_key_value_heads=8, rope_theta=5e5, tie_word_embeddings=True)),
}
