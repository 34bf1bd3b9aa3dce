from django.urls import path, re_path

from gateway import views

app_name = "gateway"

urlpatterns = [
    path("gateway/openai/v1/chat/completions", views.openai_chat_completions, name="openai-chat-completions"),
    path("gateway/openai/v1/responses", views.openai_responses, name="openai-responses"),
    path("gateway/openai/v1/embeddings", views.openai_embeddings, name="openai-embeddings"),
    path("gateway/anthropic/v1/messages", views.anthropic_messages, name="anthropic-messages"),
    re_path(r"^gateway/(?P<rest>.*)$", views.unknown_endpoint, name="unknown"),
]
