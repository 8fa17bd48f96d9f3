from django.db import models


class Item(models.Model):
    """An item of a tenant's catalog, known to the tenant by its own id (`external_id`)."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by the unique (tenant, external_id) and by (tenant, id) below.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    categories = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    embedding = models.JSONField(null=True, blank=True, help_text="The client's own vector, if it sent one.")
    # float32 content vector (recommendations.vectors): from `embedding` or from the text and categories.
    content_vector = models.BinaryField(editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "items"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="items_tenant_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title}"


class Interaction(models.Model):
    """What one of a tenant's end users did with one of its items."""

    class Type(models.TextChoices):
        VIEW = "view", "View"
        CLICK = "click", "Click"
        LIKE = "like", "Like"
        ADD_TO_CART = "add_to_cart", "Add to cart"
        PURCHASE = "purchase", "Purchase"
        RATING = "rating", "Rating"

    id = models.BigAutoField(primary_key=True)
    # Indexed by the composite indexes below, which all start with the tenant.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    user_id = models.CharField(max_length=255, help_text="The tenant's own id of its end user.")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="interactions")
    type = models.CharField(max_length=16, choices=Type.choices)
    value = models.FloatField(null=True, blank=True)
    timestamp = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "interactions"
        indexes = [
            # A user's history, newest first: the one query of a recommendation.
            models.Index(fields=["tenant", "user_id", "-timestamp"], name="interactions_user_recent"),
            models.Index(fields=["tenant", "created_at"], name="interactions_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.type} {self.item_id}"


class EngineState(models.Model):
    """Per tenant: the versions that tell every process when to rebuild its memory index, and the
    trained collaborative model (item neighbours and popularity, as a numpy archive)."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    catalog_version = models.PositiveBigIntegerField(default=0)
    model_version = models.PositiveBigIntegerField(default=0)
    trained_at = models.DateTimeField(null=True, blank=True)
    interactions_at_training = models.PositiveBigIntegerField(default=0)
    model = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "engine_states"

    def __str__(self) -> str:
        return f"engine of {self.tenant_id} (catalog v{self.catalog_version}, model v{self.model_version})"
